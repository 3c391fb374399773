//! Tells when credential files may have appeared or been replaced: inotify on the directories the
//! catalog names. Editors and CLIs replace files by rename, which gives them a new inode, so the
//! catalog is resolved again on any change there.
use std::{collections::BTreeSet, io, path::PathBuf};

use inotify::{Inotify, WatchMask};
use tokio::io::unix::AsyncFd;

pub struct Watcher {
    inotify: AsyncFd<Inotify>,
    watched: BTreeSet<PathBuf>,
}

impl Watcher {
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            inotify: crate::readiness::register_readable(Inotify::init()?)?,
            watched: BTreeSet::new(),
        })
    }

    /// Adds watches for directories not watched yet. A directory that cannot be watched is
    /// logged, not fatal: its credentials are still watched, only late arrivals are missed.
    pub fn watch(&mut self, dirs: &BTreeSet<PathBuf>) {
        let mask = WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE
            | WatchMask::ATTRIB;
        for dir in dirs.difference(&self.watched.clone()) {
            match self.inotify.get_mut().watches().add(dir, mask) {
                Ok(_) => {
                    self.watched.insert(dir.clone());
                }
                Err(e) => log::warn!("cannot watch {} for new credentials: {e}", dir.display()),
            }
        }
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
