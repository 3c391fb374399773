//! The service manager's readiness protocol (sd_notify): where `NOTIFY_SOCKET` names a socket
//! (systemd's `Type=notify`), keytrail says READY once its `ready` record is out, RELOADING
//! and READY around a SIGHUP reload, and STOPPING when it stops. Elsewhere it does nothing.
//! A datagram on a Unix socket; no library needed.
use std::os::unix::net::UnixDatagram;

/// Says `state` (newline-separated `KEY=VALUE` pairs) to the service manager, if there is one.
/// A failure is logged at debug: readiness is the manager's concern, not a reason to stop.
pub fn notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        notify_to(&path, state);
    }
}

/// Says `state` to the socket at `path` (`@name`: in the abstract namespace).
fn notify_to(path: &std::ffi::OsStr, state: &str) {
    let socket = match UnixDatagram::unbound() {
        Ok(socket) => socket,
        Err(e) => {
            log::debug!("sd_notify: {e}");
            return;
        }
    };
    let bytes = path.as_encoded_bytes();
    // `@name`: a socket in the abstract namespace.
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        abstract_address(name).and_then(|address| socket.send_to_addr(state.as_bytes(), &address))
    } else {
        socket.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = sent {
        log::debug!("sd_notify to {}: {e}", path.to_string_lossy());
    }
}

fn abstract_address(name: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

/// `MONOTONIC_USEC=`: CLOCK_MONOTONIC now, which systemd wants beside RELOADING=1.
pub fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_reaches_the_socket_notify_socket_names() {
        let dir = std::env::temp_dir().join(format!("kt-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1\nSTATUS=watching 3 credentials");
        let mut buf = [0u8; 128];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=watching 3 credentials");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
