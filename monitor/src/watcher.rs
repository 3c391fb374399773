//! Tells when credential files may have appeared, been replaced or changed owner: inotify on the
//! directories the catalog names and on the credential files themselves. Editors and CLIs replace
//! files by rename, which gives them a new inode, so the catalog is resolved again on any change.
//!
//! Directories are watched only for entries coming and going, never for events on their children
//! (open, read, attribute changes): with such a watch, every open, read and close of every file
//! in the directory (a home directory, say) walks up to the parent's marks. Attribute changes
//! (chown, chmod) are watched on the credential files alone.
use std::{
    collections::{BTreeSet, HashSet},
    io,
    path::{Path, PathBuf},
};

use inotify::{Inotify, WatchDescriptor, WatchMask};
use tokio::io::unix::AsyncFd;

pub struct Watcher {
    inotify: AsyncFd<Inotify>,
    /// The watches made, directories and files alike: one per inode, so a directory deleted
    /// and made again (`rm -rf ~/.ssh; mkdir ~/.ssh`), or a replaced file, is a new one.
    watches: HashSet<WatchDescriptor>,
}

impl Watcher {
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            inotify: crate::kernel::readiness::register_readable(Inotify::init()?)?,
            watches: HashSet::new(),
        })
    }

    /// Adds watches for the directories and the credential files (inotify gives the same watch
    /// again for an inode it watches already). A directory that cannot be watched is logged,
    /// not fatal: its credentials are still watched, only late arrivals are missed. Returns how
    /// many watches are new.
    pub fn watch<'a>(
        &mut self,
        dirs: &BTreeSet<PathBuf>,
        files: impl Iterator<Item = &'a Path>,
    ) -> usize {
        let mut added = 0;
        let mask =
            WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM | WatchMask::DELETE;
        for file in files {
            match self
                .inotify
                .get_mut()
                .watches()
                .add(file, WatchMask::ATTRIB)
            {
                Ok(wd) => added += usize::from(self.watches.insert(wd)),
                Err(e) => log::debug!("cannot watch {} for owner changes: {e}", file.display()),
            }
        }
        for dir in dirs {
            match self.inotify.get_mut().watches().add(dir, mask) {
                Ok(wd) => added += usize::from(self.watches.insert(wd)),
                Err(e) => log::warn!("cannot watch {} for new credentials: {e}", dir.display()),
            }
        }
        added
    }

    /// Waits for a change in a watched directory and consumes the pending notifications.
    pub async fn changed(&mut self) -> io::Result<()> {
        let mut guard = self.inotify.readable_mut().await?;
        let mut buffer = [0u8; 4096];
        loop {
            match guard.get_inner_mut().read_events(&mut buffer) {
                Ok(events) => {
                    if events.count() == 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        guard.clear_ready();
        Ok(())
    }
}
