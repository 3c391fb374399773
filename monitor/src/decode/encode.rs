//! The bytes the kernel programs would send, for tests elsewhere in the crate.
use monitor_common::*;

fn bytes_of<T>(value: &T) -> Vec<u8> {
    // SAFETY: repr(C) plain data with explicit padding.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

fn header(kind: EventKind, tgid: u32, boot_ns: u64) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tgid,
        boot_ns,
    }
}

fn fixed<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    out[..text.len()].copy_from_slice(text.as_bytes());
    out
}

pub fn exec(pid: u32, ppid: u32, comm: &str, filename: &str, argv: &[&str]) -> Vec<u8> {
    exec_with_env(pid, ppid, comm, filename, argv, &[], 0)
}

/// An exec whose environment buffer holds `env` (NUL-separated), cut at `cut` (0: whole).
pub fn exec_with_env(
    pid: u32,
    ppid: u32,
    comm: &str,
    filename: &str,
    argv: &[&str],
    env: &[u8],
    cut: u32,
) -> Vec<u8> {
    let joined: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let mut argv_buf = [0u8; ARGV_LEN];
    argv_buf[..joined.len()].copy_from_slice(&joined);
    let mut env_buf = [0u8; ENV_LEN];
    env_buf[..env.len()].copy_from_slice(env);
    bytes_of(&ExecEvent {
        header: header(EventKind::Exec, pid, 1_000),
        ppid,
        uid: 1000,
        gid: 1000,
        loginuid: 1000,
        sessionid: u32::MAX,
        argv_len: joined.len() as u32,
        start_boot_ns: 500,
        env_len: env.len() as u32,
        env_cut: cut,
        exe_uid: 0,
        _pad: 0,
        comm: fixed(comm),
        filename: fixed(filename),
        argv: argv_buf,
        env: env_buf,
    })
}

pub fn exit(pid: u32, boot_ns: u64) -> Vec<u8> {
    bytes_of(&ExitEvent {
        header: header(EventKind::Exit, pid, boot_ns),
    })
}

pub fn file_access(pid: u32, dev: u32, ino: u64, hook: AccessHook) -> Vec<u8> {
    file_access_decided(pid, dev, ino, hook, decision::ALLOWED)
}

/// An open read denial decided on (`monitor_common::decision`).
pub fn file_access_decided(
    pid: u32,
    dev: u32,
    ino: u64,
    hook: AccessHook,
    decision: u16,
) -> Vec<u8> {
    bytes_of(&FileAccessEvent {
        header: header(EventKind::FileAccess, pid, 2_000),
        key: FileKey::new(dev, ino),
        hook: hook as u32,
        uid: 1000,
        comm: fixed("cat"),
        decision: u32::from(decision),
        _pad: 0,
    })
}

pub fn connect4(pid: u32, ip: [u8; 4], port: u16) -> Vec<u8> {
    connect4_decided(pid, ip, port, decision::ALLOWED)
}

/// A connect enforcement decided on (`monitor_common::decision`).
pub fn connect4_decided(pid: u32, ip: [u8; 4], port: u16, decision: u16) -> Vec<u8> {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&ip);
    bytes_of(&ConnectEvent {
        header: header(EventKind::Connect, pid, 3_000),
        family: libc::AF_INET as u16,
        protocol: libc::IPPROTO_TCP as u16,
        port,
        decision,
        uid: 1000,
        addr,
        comm: fixed("curl"),
        _pad2: 0,
        cookie: 0x1000 + u64::from(pid),
    })
}

/// A DNS answer (`EventKind::DnsAnswer`) or TLS segment (`EventKind::TlsHello`) for `pid`.
/// The DNS server recorded packets come from and go to.
pub const SERVER: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 53);

pub fn payload(
    kind: EventKind,
    pid: u32,
    cookie: u64,
    protocol: u16,
    seq: u32,
    data: &[u8],
) -> Vec<u8> {
    let mut buf = [0u8; PAYLOAD_LEN];
    let len = data.len().min(PAYLOAD_LEN);
    buf[..len].copy_from_slice(&data[..len]);
    bytes_of(&PayloadEvent {
        header: header(kind, pid, 2_500),
        cookie,
        protocol,
        family: libc::AF_INET as u16,
        seq,
        total_len: data.len() as u32,
        len: len as u32,
        peer: {
            let mut peer = [0u8; 16];
            peer[..4].copy_from_slice(&SERVER.octets());
            peer
        },
        data: buf,
    })
}
