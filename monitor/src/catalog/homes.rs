//! Where users keep their credentials: every account's home directory, from the user database
//! as NSS serves it (files, LDAP, SSSD, ...), or from a passwd file named for tests.
use std::{
    fs,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

/// Home directories: /root and every account's home that exists (from /etc/passwd).
pub fn home_directories(passwd: Option<&Path>) -> Vec<PathBuf> {
    let listed = match passwd {
        Some(file) => fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split(':').nth(5).map(PathBuf::from))
            .collect(),
        None => user_database_homes(),
    };
    let mut homes = vec![PathBuf::from("/root")];
    for home in listed {
        if home != Path::new("/") && home.is_dir() && !homes.contains(&home) {
            homes.push(home);
        }
    }
    homes.retain(|h| h.is_dir());
    homes
}

/// Every account's home from the user database as NSS serves it (files, LDAP, SSSD, ...), not
/// /etc/passwd alone. getpwent keeps state in libc: called once, at start, before any thread.
pub(super) fn user_database_homes() -> Vec<PathBuf> {
    let mut homes = Vec::new();
    // SAFETY: setpwent/getpwent/endpwent are used from one thread; each entry's pw_dir is a
    // NUL-terminated string valid until the next call, and is copied before it.
    unsafe {
        libc::setpwent();
        loop {
            let entry = libc::getpwent();
            if entry.is_null() {
                break;
            }
            let dir = (*entry).pw_dir;
            if !dir.is_null() {
                let bytes = std::ffi::CStr::from_ptr(dir).to_bytes();
                homes.push(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)));
            }
        }
        libc::endpwent();
    }
    homes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_come_from_the_user_database() {
        // root's entry is in every user database; its home, /root, is listed first anyway.
        assert!(user_database_homes().contains(&PathBuf::from("/root")));
        let dir = std::env::temp_dir().join(format!("keytrail-homes-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let passwd = dir.join("passwd");
        fs::write(
            &passwd,
            "x:x:1:1::/nonexistent:/bin/sh\ny:x:2:2::/tmp:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(
            home_directories(Some(&passwd)),
            [PathBuf::from("/root"), PathBuf::from("/tmp")]
        );
    }
}
