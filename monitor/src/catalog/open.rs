//! Opening a credential file as root without being redirected by the user who owns it.
//! - A file under a home directory is opened beneath that home (openat2 with RESOLVE_BENEATH: a
//!   symlink may lead elsewhere in the home, as dotfile managers do, but not out of it, and not
//!   through /proc's magic links), and must be owned by the home's owner: `ln -s
//!   /root/.ssh/id_ed25519 ~/.aws/credentials` is refused, and so is a link to another user's
//!   file.
//! - Any other file (system paths, `--watch`) is opened without following a symlink as its last
//!   component, but for one that only root could have made: a root-owned link in a root-owned
//!   directory that others cannot write to, or that is sticky (others cannot replace root's
//!   links there). Such a link is followed beneath its own directory only (kubelet's projected
//!   tokens are `token -> ..data/token`, `..data` a link to a timestamped directory beside it,
//!   in a sticky tmpfs). A user's `ln -s /etc/shadow /srv/shared/key.pem` is refused.
//!   (Directories above the last component are followed as the path resolves.)
//! - Opened non-blocking, so a FIFO put where a credential was expected cannot stall the daemon;
//!   every fact (type, owner, device and inode, filesystem) comes from the open file, so nothing
//!   can be swapped between a check and the read.
use std::{
    ffi::CString,
    fs::{File, Metadata, OpenOptions},
    io,
    os::unix::{
        ffi::OsStrExt,
        fs::{MetadataExt, OpenOptionsExt},
        io::{AsRawFd, FromRawFd},
    },
    path::Path,
};

/// Why a path is not watched as a credential.
#[derive(Debug)]
pub enum Refusal {
    /// Nothing there (the common case: most places hold no credential).
    Missing,
    /// Not a regular file (a directory, a FIFO, a device).
    NotAFile,
    /// Under a home, but owned by someone else than the home's owner.
    NotTheOwners { owner: u32, home_owner: u32 },
    /// It could not be opened as the rules above ask (a symlink out of the home, or as the last
    /// component elsewhere, unless root made it).
    Refused(io::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing => f.write_str("no such file"),
            Refusal::NotAFile => f.write_str("not a regular file"),
            Refusal::NotTheOwners { owner, home_owner } => write!(
                f,
                "owned by uid {owner}, not by the home's owner (uid {home_owner})"
            ),
            Refusal::Refused(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                f.write_str("a symlink where none may be")
            }
            Refusal::Refused(e) if e.raw_os_error() == Some(libc::EXDEV) => f.write_str(
                "a symlink leading out of the home (or, outside homes, out of its own directory)",
            ),
            Refusal::Refused(e) => write!(f, "cannot be opened: {e}"),
        }
    }
}

/// An open credential file and what fstat says of it.
pub struct Opened {
    pub file: File,
    pub meta: Metadata,
}

/// Opens `path` for reading, as the module doc says; `home` is the home directory it was found
/// under, if any.
#[cfg(test)]
pub fn open(path: &Path, home: Option<&Path>) -> Result<Opened, Refusal> {
    open_owned(path, home, None)
}

/// As `open`, and when `owner` is given, the home must be that user's: a directory a user names
/// (an agent's workspace, from its working directory) rather than the user database, which a
/// user could swap for a link to another user's between the look and the open.
pub fn open_owned(path: &Path, home: Option<&Path>, owner: Option<u32>) -> Result<Opened, Refusal> {
    let (file, home_owner) = match home.and_then(|h| Some((h, path.strip_prefix(h).ok()?))) {
        Some((home, relative)) => {
            let dir = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open(home)
                .map_err(refusal)?;
            let home_owner = dir.metadata().map_err(refusal)?.uid();
            if let Some(owner) = owner
                && owner != home_owner
            {
                return Err(Refusal::NotTheOwners {
                    owner: home_owner,
                    home_owner: owner,
                });
            }
            (
                open_beneath(&dir, relative).map_err(refusal)?,
                Some(home_owner),
            )
        }
        None => {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(Refusal::NotAFile); // `/`, or a path ending in `..`
            };
            let dir = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open(parent)
                .map_err(refusal)?;
            let name = Path::new(name);
            let file = if root_made_link(&dir, name) {
                open_beneath(&dir, name)
            } else {
                open_no_follow(&dir, name)
            };
            (file.map_err(refusal)?, None)
        }
    };
    let meta = file.metadata().map_err(refusal)?;
    if !meta.is_file() {
        return Err(Refusal::NotAFile);
    }
    if let Some(home_owner) = home_owner
        && meta.uid() != home_owner
    {
        return Err(Refusal::NotTheOwners {
            owner: meta.uid(),
            home_owner,
        });
    }
    Ok(Opened { file, meta })
}

fn refusal(e: io::Error) -> Refusal {
    if e.kind() == io::ErrorKind::NotFound {
        Refusal::Missing
    } else {
        Refusal::Refused(e)
    }
}

/// Whether `name` in `dir` is a symlink only root could have put there: root's own, in a
/// root-owned directory others cannot write to, or that is sticky (where only a link's owner or
/// the directory's may replace it). Anything else is not followed.
fn root_made_link(dir: &File, name: &Path) -> bool {
    let Ok(c_name) = CString::new(name.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: stat is plain integers; all zero is a valid value to fill in.
    let mut link: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor, the NUL-terminated name and the stat buffer live across the call.
    let looked = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c_name.as_ptr(),
            &mut link,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    let Ok(dir_meta) = dir.metadata() else {
        return false;
    };
    let others_cannot_replace =
        dir_meta.mode() & 0o022 == 0 || dir_meta.mode() & libc::S_ISVTX != 0;
    looked == 0
        && link.st_mode & libc::S_IFMT == libc::S_IFLNK
        && link.st_uid == 0
        && dir_meta.uid() == 0
        && others_cannot_replace
}

/// openat(dir, name, O_NOFOLLOW), read-only and non-blocking: a symlink fails with ELOOP.
fn open_no_follow(dir: &File, name: &Path) -> io::Result<File> {
    let c_name = CString::new(name.as_os_str().as_bytes())?;
    let flags =
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: the descriptor and the NUL-terminated name live across the call.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c_name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// openat2(dir, relative, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), read-only and non-blocking.
fn open_beneath(dir: &File, relative: &Path) -> io::Result<File> {
    let name = CString::new(relative.as_os_str().as_bytes())?;
    // SAFETY: open_how is plain integers; all zero is a valid value to fill in.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: the descriptor, the NUL-terminated name and the open_how live across the call,
    // and the size passed is open_how's.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use std::{
        fs,
        os::unix::fs::{PermissionsExt, symlink},
    };

    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        crate::testing::scratch_dir(&format!("open-{name}"))
    }

    #[test]
    fn a_home_file_opens_and_links_inside_the_home_are_followed() {
        let home = scratch("home");
        fs::create_dir_all(home.join("dotfiles/aws")).unwrap();
        fs::write(home.join("dotfiles/aws/credentials"), "[default]\n").unwrap();
        fs::write(home.join(".netrc"), "machine x\n").unwrap();
        symlink("dotfiles/aws", home.join(".aws")).unwrap();
        assert!(open(&home.join(".netrc"), Some(&home)).is_ok());
        assert!(open(&home.join(".aws/credentials"), Some(&home)).is_ok());
        assert!(matches!(
            open(&home.join(".npmrc"), Some(&home)),
            Err(Refusal::Missing)
        ));
    }

    #[test]
    fn a_link_out_of_the_home_or_as_the_last_component_elsewhere_is_refused() {
        let home = scratch("escape");
        let outside = scratch("outside").join("secret");
        fs::write(&outside, "root's key\n").unwrap();
        symlink(&outside, home.join(".netrc")).unwrap();
        fs::create_dir_all(home.join(".ssh")).unwrap();
        symlink("../../", home.join(".ssh/up")).unwrap();
        let refused = open(&home.join(".netrc"), Some(&home)).err().unwrap();
        assert!(matches!(refused, Refusal::Refused(_)), "{refused}");
        assert!(refused.to_string().contains("out of the home"), "{refused}");
        assert!(open(&home.join(".ssh/up/etc/passwd"), Some(&home)).is_err());
        // Not under a home: a link as the last component is not followed...
        let refused = open(&home.join(".netrc"), None).err().unwrap();
        assert!(refused.to_string().contains("symlink"), "{refused}");
        assert!(open(&outside, None).is_ok());
        // ...unless root made it where only root could (kubelet's token links), and then only
        // beneath its directory. (The tests run as root in a 0755 root-owned directory.)
        fs::create_dir_all(home.join("..2026_12_02")).unwrap();
        fs::write(home.join("..2026_12_02/token"), "jwt\n").unwrap();
        symlink("..2026_12_02", home.join("..data")).unwrap();
        symlink("..data/token", home.join("token")).unwrap();
        assert!(open(&home.join("token"), None).is_ok());
        symlink(&outside, home.join("up")).unwrap();
        let refused = open(&home.join("up"), None).err().unwrap();
        assert!(
            refused.to_string().contains("out of its own directory"),
            "{refused}"
        );
        // A link someone else owns, or in a directory others may write to, is not followed.
        std::os::unix::fs::lchown(home.join("token"), Some(1000), None).unwrap();
        assert!(open(&home.join("token"), None).is_err());
        std::os::unix::fs::lchown(home.join("token"), Some(0), None).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(open(&home.join("token"), None).is_err());
        fs::set_permissions(&home, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(
            open(&home.join("token"), None).is_ok(),
            "sticky: others cannot replace it"
        );
    }

    #[test]
    fn a_fifo_is_not_a_file_and_does_not_block() {
        let dir = scratch("fifo");
        let fifo = dir.join(".netrc");
        let name = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(matches!(open(&fifo, Some(&dir)), Err(Refusal::NotAFile)));
        assert!(matches!(open(&fifo, None), Err(Refusal::NotAFile)));
    }

    #[test]
    fn a_home_file_must_be_the_home_owners() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: changing a file's owner needs root");
            return;
        }
        let home = scratch("owner");
        let file = home.join(".netrc");
        fs::write(&file, "machine x\n").unwrap();
        std::os::unix::fs::chown(&file, Some(4242), None).unwrap();
        let refused = open(&file, Some(&home)).err().unwrap();
        assert!(
            matches!(refused, Refusal::NotTheOwners { owner: 4242, .. }),
            "{refused}"
        );
    }
}
