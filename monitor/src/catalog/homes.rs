//! Where users keep their credentials: every account's home directory, from the user database
//! as NSS serves it (files, LDAP, SSSD, ...), or from a passwd file named on the command line
//! (a container's view of the host's, or a test's).
use std::{
    fs,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

/// Accounts listed whose home does not exist yet, looked at again on each refresh: bounded,
/// since system accounts list homes such as /nonexistent that never come.
const MAX_WAITING: usize = 4096;

/// The home directories credentials are looked for in, kept current: `useradd` after keytrail
/// started adds an account (the user database file changes), then makes its home.
pub struct Homes {
    /// The passwd file named with `--passwd`, or None for the user database.
    passwd: Option<PathBuf>,
    /// Whether the accounts were listed yet, and the user database file's (inode, modification
    /// time) then.
    listed: bool,
    stamp: Option<(u64, i64, i64)>,
    /// Homes that exist: /root first, then every account's.
    present: Vec<PathBuf>,
    /// Homes listed that did not exist when last looked at.
    waiting: Vec<PathBuf>,
}

impl Homes {
    pub fn read(passwd: Option<&Path>) -> Self {
        let mut homes = Self {
            passwd: passwd.map(Path::to_path_buf),
            listed: false,
            stamp: None,
            present: Vec::new(),
            waiting: Vec::new(),
        };
        homes.appeared();
        homes
    }

    pub fn present(&self) -> &[PathBuf] {
        &self.present
    }

    /// Homes that exist now and did not when last asked: from accounts added to the user
    /// database since, or whose directory was made since.
    pub fn appeared(&mut self) -> Vec<PathBuf> {
        let stamp = self.stamp();
        let mut candidates = std::mem::take(&mut self.waiting);
        if !self.listed || stamp != self.stamp {
            self.listed = true;
            self.stamp = stamp;
            candidates = [PathBuf::from("/root")]
                .into_iter()
                .chain(self.listed())
                .collect();
        }
        let mut new = Vec::new();
        for home in candidates {
            if home == Path::new("/") || self.present.contains(&home) || new.contains(&home) {
                continue;
            }
            if home.is_dir() {
                new.push(home);
            } else if self.waiting.len() < MAX_WAITING && !self.waiting.contains(&home) {
                self.waiting.push(home);
            }
        }
        self.present.extend(new.iter().cloned());
        new
    }

    fn listed(&self) -> Vec<PathBuf> {
        match &self.passwd {
            Some(file) => fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .filter_map(|line| line.split(':').nth(5).map(PathBuf::from))
                .collect(),
            None => user_database_homes(),
        }
    }

    fn stamp(&self) -> Option<(u64, i64, i64)> {
        use std::os::unix::fs::MetadataExt;
        let file = self.passwd.as_deref().unwrap_or(Path::new("/etc/passwd"));
        fs::metadata(file)
            .ok()
            .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()))
    }
}

/// Every account's home from the user database as NSS serves it (files, LDAP, SSSD, ...), not
/// /etc/passwd alone. getpwent keeps state in libc: called from the daemon's thread only (the
/// writer thread never asks the user database).
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
    fn homes_come_from_the_user_database_and_new_ones_are_found() {
        // root's entry is in every user database; its home, /root, is listed first anyway.
        assert!(user_database_homes().contains(&PathBuf::from("/root")));
        let dir = crate::testing::scratch_dir("homes");
        let passwd = dir.join("passwd");
        fs::write(
            &passwd,
            "x:x:1:1::/nonexistent:/bin/sh\ny:x:2:2::/tmp:/bin/sh\n",
        )
        .unwrap();
        let mut homes = Homes::read(Some(&passwd));
        assert_eq!(
            homes.present(),
            [PathBuf::from("/root"), PathBuf::from("/tmp")]
        );
        assert_eq!(homes.appeared(), Vec::<PathBuf>::new());

        // useradd: the account first (the file replaced), then its home.
        let new_home = dir.join("new-user");
        let text = format!(
            "{}z:x:3:3::{}:/bin/sh\n",
            fs::read_to_string(&passwd).unwrap(),
            new_home.display()
        );
        fs::write(dir.join("passwd.new"), text).unwrap();
        fs::rename(dir.join("passwd.new"), &passwd).unwrap();
        assert_eq!(homes.appeared(), Vec::<PathBuf>::new(), "no home yet");
        fs::create_dir(&new_home).unwrap();
        assert_eq!(homes.appeared(), std::slice::from_ref(&new_home));
        assert_eq!(homes.appeared(), Vec::<PathBuf>::new(), "said once");
        assert_eq!(homes.present().last(), Some(&new_home));
        fs::remove_dir_all(dir).unwrap();
    }
}
