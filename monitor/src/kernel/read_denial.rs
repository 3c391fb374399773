//! Read denial's kernel map, made from the catalog and the policy: which executables may open
//! which credentials (monitor-ebpf's readers.rs refuses the others at `lsm/file_open`).
//!
//! Credentials whose policy refuses unexpected readers and whose reader patterns are the same
//! share a reader set (at most `MAX_READER_SETS`, numbered for the whole run). The kernel knows
//! an allowed reader by its executable's identity, so the patterns are resolved here into
//! files: every root-owned regular file in the program directories (and every absolute path a
//! pattern names) whose resolved path or file name a pattern matches, as the
//! `unexpected-reader` rule matches a reader's executable. A program elsewhere, not root's, or
//! reached through a symlink named like a reader is refused. The directories are read again on
//! every catalog change and every `RESCAN` (a package upgrade puts a new file in place).
use std::{
    collections::{BTreeMap, BTreeSet},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    time::Duration,
};

use aya::maps::{HashMap, MapData, MapError};
use monitor_common::{FileKey, MAX_READER_SETS};

use crate::{catalog::kernel_dev, policy::Glob};

/// Where programs are looked for.
const PROGRAM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/usr/lib/openssh",
    "/usr/libexec/openssh",
    "/usr/lib/git-core",
    "/usr/libexec/git-core",
    "/usr/local/libexec/git-core",
];
/// How often the program directories are read again while read denial is on.
pub const RESCAN: Duration = Duration::from_secs(10);
/// Executables the kernel map holds, at most (its size in readers.rs).
const MAX_EXECUTABLES: usize = 4096;

/// The reader sets given so far in this run, by number: a set's number is in the watched
/// map's values, so it keeps its meaning while keytrail runs.
#[derive(Default)]
pub struct ReaderSets {
    sets: Vec<Vec<Glob>>,
}

impl ReaderSets {
    /// The set number + 1 of `readers` (0 when read denial does not apply, or no set is
    /// left: then `Err` says why).
    pub fn number(&mut self, readers: &[Glob], deny: bool) -> Result<u32, String> {
        if !deny || readers.is_empty() {
            return Ok(0);
        }
        if let Some(i) = self.sets.iter().position(|s| s == readers) {
            return Ok(i as u32 + 1);
        }
        if self.sets.len() >= MAX_READER_SETS as usize {
            return Err(format!(
                "more than {MAX_READER_SETS} distinct reader lists refuse reads"
            ));
        }
        self.sets.push(readers.to_vec());
        Ok(self.sets.len() as u32)
    }

    /// The executables each set allows, as the kernel map holds them: a mask of sets by file.
    pub fn allowed(&self) -> BTreeMap<FileKey, u64> {
        let mut allowed = BTreeMap::new();
        if self.sets.is_empty() {
            return allowed;
        }
        for path in candidates(&self.sets) {
            let Some((key, resolved)) = root_program(&path) else {
                continue;
            };
            let name = resolved.rsplit('/').next().unwrap_or_default().to_owned();
            let mask = self
                .sets
                .iter()
                .enumerate()
                .filter(|(_, set)| set.iter().any(|g| g.matches(&resolved) || g.matches(&name)))
                .fold(0u64, |mask, (i, _)| mask | 1 << i);
            if mask != 0 {
                *allowed.entry(key).or_default() |= mask;
            }
        }
        allowed
    }
}

/// The files to look at: the program directories' entries, and the absolute paths patterns
/// name (a pattern's directory, when it has no wildcard).
fn candidates(sets: &[Vec<Glob>]) -> BTreeSet<PathBuf> {
    let mut dirs: BTreeSet<PathBuf> = PROGRAM_DIRS.iter().map(PathBuf::from).collect();
    let mut files = BTreeSet::new();
    for glob in sets.iter().flatten() {
        let pattern = glob.as_str();
        if !pattern.starts_with('/') {
            continue;
        }
        if !pattern.contains(['*', '?', '[', '{']) {
            files.insert(PathBuf::from(pattern));
        } else if let Some(parent) = Path::new(pattern).parent()
            && !parent.to_string_lossy().contains(['*', '?', '[', '{'])
        {
            dirs.insert(parent.to_owned());
        }
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        files.extend(entries.flatten().map(|e| e.path()));
    }
    files
}

/// `path`'s file, symlinks resolved, when it is a regular file root owns and only root may
/// write: its identity and resolved path. The file is opened once (`O_PATH`, not following a
/// last symlink) and judged by that descriptor, and its path read back from it, so a path
/// swapped between two looks cannot lend another file a reader's name.
fn root_program(path: &Path) -> Option<(FileKey, String)> {
    use std::os::unix::fs::OpenOptionsExt;
    let resolved = std::fs::canonicalize(path).ok()?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(&resolved)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return None;
    }
    let named = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let key = FileKey::new(kernel_dev(meta.dev()), meta.ino());
    Some((key, named.to_str()?.to_owned()))
}

/// The kernel's map of allowed readers, and what it holds.
pub struct ReadersMap {
    map: HashMap<MapData, FileKey, u64>,
    installed: BTreeMap<FileKey, u64>,
}

impl ReadersMap {
    pub fn new(map: HashMap<MapData, FileKey, u64>) -> Self {
        Self {
            map,
            installed: BTreeMap::new(),
        }
    }

    /// Makes the kernel's map `allowed`: new entries first, then the ones gone, so an
    /// executable in both is never missing. Returns how many executables are allowed.
    pub fn install(&mut self, allowed: &BTreeMap<FileKey, u64>) -> Result<usize, MapError> {
        if allowed.len() > MAX_EXECUTABLES {
            log::warn!(
                "read denial: {} allowed executables, the kernel holds {MAX_EXECUTABLES}: \
                 the others are refused",
                allowed.len()
            );
        }
        for (key, mask) in allowed.iter().take(MAX_EXECUTABLES) {
            if self.installed.get(key) != Some(mask) {
                self.map.insert(key, mask, 0)?;
            }
        }
        for key in self.installed.keys() {
            if !allowed.contains_key(key) {
                let _ = self.map.remove(key);
            }
        }
        self.installed = allowed
            .iter()
            .take(MAX_EXECUTABLES)
            .map(|(k, v)| (*k, *v))
            .collect();
        Ok(self.installed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(patterns: &[&str]) -> Vec<Glob> {
        patterns.iter().map(|p| Glob::new(p).unwrap()).collect()
    }

    #[test]
    fn reader_lists_share_a_set_and_keep_their_number() {
        let mut sets = ReaderSets::default();
        let ssh = globs(&["ssh", "git"]);
        let kube = globs(&["kubectl"]);
        assert_eq!(sets.number(&ssh, true), Ok(1));
        assert_eq!(sets.number(&kube, true), Ok(2));
        assert_eq!(sets.number(&ssh, true), Ok(1));
        assert_eq!(sets.number(&kube, false), Ok(0), "not refused");
        assert_eq!(sets.number(&[], true), Ok(0), "anyone may read");
    }

    /// On this machine: `cat`'s file is found as an allowed reader by its name, and by its
    /// resolved path; a pattern that names nothing allows nothing.
    #[test]
    fn patterns_resolve_to_root_owned_executables() {
        let (cat, resolved) = root_program(Path::new("/bin/cat")).expect("cat is root's");
        let mut sets = ReaderSets::default();
        sets.number(&globs(&["cat"]), true).unwrap();
        // The resolved path, its last letter a wildcard: an absolute pattern.
        let pattern = format!("{}?", &resolved[..resolved.len() - 1]);
        sets.number(&globs(&[&pattern]), true).unwrap();
        sets.number(&globs(&["no-such-program-kt"]), true).unwrap();
        let allowed = sets.allowed();
        assert_eq!(allowed.get(&cat), Some(&0b11), "{allowed:?}");
        assert!(allowed.values().all(|mask| mask & 0b100 == 0));
    }
}
