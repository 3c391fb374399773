//! The secret files of the directories agents work in: an agent reads a project's `.env`, its
//! keys and its registry tokens as readily as a home's. When an agent starts, or one of its
//! processes starts in another directory (the correlator tells, from /proc/PID/cwd), that
//! directory and its immediate subdirectories are looked in for the files below, as long as
//! an agent works there. The directory must be the agent's user's; files are opened beneath
//! it and must be that user's too (open.rs), so an agent that changes into /etc or into
//! another user's project does not make keytrail read what is there.
//!
//! Bounded for the kernel's watch map (16,384 files, shared with every home): at most
//! `MAX_WORKSPACES` at once, `MAX_FILES` files each.
use std::path::{Path, PathBuf};

use super::Source;
use crate::{policy::Policy, vocab::Kind};

/// Workspaces watched at once; past it, a new one waits for a place (said in the log once).
pub const MAX_WORKSPACES: usize = 8;
/// Files watched in one workspace; past it, the rest are said in the log and not watched.
pub const MAX_FILES: usize = 256;

/// The secret files of a project, by name, and their kinds; each is looked for in the
/// workspace and one directory below it (a monorepo's packages, a `config/` directory), at
/// most `MAX_GLOB_MATCHES` matches per name and level.
const FILES: &[(&str, Kind)] = &[
    (".env", Kind::Dotenv),
    (".env.*", Kind::Dotenv),
    ("*.pem", Kind::Generic),
    ("*.key", Kind::Generic),
    ("*.p12", Kind::Generic),
    ("credentials*.json", Kind::Generic),
    (".npmrc", Kind::Npm),
    (".pypirc", Kind::Pypi),
    (".mcp.json", Kind::Mcp),
];

/// MCP configurations a project keeps in a directory of its client's, in the workspace only.
const NESTED: &[(&str, Kind)] = &[
    (".vscode/mcp.json", Kind::Mcp),
    (".cursor/mcp.json", Kind::Mcp),
];

/// Whether `dir` can be a workspace of a process of `uid`: an absolute, UTF-8 path (a glob
/// pattern is made of it), not the root or a kernel filesystem, a directory owned by `uid`.
pub fn eligible(dir: &Path, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    dir.is_absolute()
        && dir.to_str().is_some()
        && dir != Path::new("/")
        && !["/proc", "/sys", "/dev", "/run"]
            .iter()
            .any(|skip| dir.starts_with(skip))
        && std::fs::metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == uid)
}

/// The sources of workspace `dir` of user `uid`. Its path is escaped: a directory named `[x]`
/// or `*` is a directory, not a pattern.
pub fn sources(dir: &Path, uid: u32, policy: &Policy) -> Vec<Source> {
    let base = glob::Pattern::escape(&dir.display().to_string());
    let levels = [base.clone(), format!("{base}/*")];
    let top = FILES.iter().flat_map(|(name, kind)| {
        levels
            .iter()
            .map(move |level| (format!("{level}/{name}"), *kind))
    });
    let nested = NESTED
        .iter()
        .map(|(name, kind)| (format!("{base}/{name}"), *kind));
    top.chain(nested)
        .map(|(pattern, kind)| Source {
            home: Some(dir.to_path_buf()),
            workspace: Some(dir.to_path_buf()),
            owner: Some(uid),
            ..Source::watched(pattern, kind, policy)
        })
        .collect()
}

/// The workspaces watched, in the order they came.
#[derive(Default)]
pub struct Workspaces {
    dirs: Vec<PathBuf>,
    /// Whether the bound was said in the log since it was last reached.
    said_full: bool,
}

impl Workspaces {
    /// Adds `dir`; false when it is watched already, or the bound is reached (said once).
    pub fn add(&mut self, dir: &Path) -> bool {
        if self.dirs.iter().any(|d| d == dir) {
            return false;
        }
        if self.dirs.len() >= MAX_WORKSPACES {
            if !self.said_full {
                log::warn!(
                    "{MAX_WORKSPACES} agent workspaces watched already: {dir:?} waits until \
                     agents leave one"
                );
                self.said_full = true;
            }
            return false;
        }
        self.dirs.push(dir.to_path_buf());
        true
    }

    /// Forgets `dir`; false when it was not watched.
    pub fn remove(&mut self, dir: &Path) -> bool {
        let before = self.dirs.len();
        self.dirs.retain(|d| d != dir);
        self.said_full &= self.dirs.len() >= MAX_WORKSPACES;
        self.dirs.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_is_looked_in_two_levels_deep_with_its_path_escaped() {
        let policy = Policy::embedded();
        let sources = sources(Path::new("/home/a/[app]"), 1000, &policy);
        assert_eq!(sources.len(), FILES.len() * 2 + NESTED.len());
        let patterns: Vec<&str> = sources.iter().map(|s| s.pattern.as_str()).collect();
        assert!(patterns.contains(&"/home/a/[[]app[]]/.env"), "{patterns:?}");
        assert!(
            patterns.contains(&"/home/a/[[]app[]]/*/.env"),
            "{patterns:?}"
        );
        assert!(sources.iter().all(
            |s| s.owner == Some(1000) && s.home.as_deref() == Some(Path::new("/home/a/[app]"))
        ));
        let dir = crate::testing::scratch_dir("workspace-eligible");
        assert!(eligible(&dir, 0), "root's own directory, for root");
        assert!(!eligible(&dir, 1000), "not another user's");
        assert!(!eligible(Path::new("/"), 0) && !eligible(Path::new("/proc/1"), 0));
    }

    #[test]
    fn workspaces_are_bounded_and_said_once() {
        let mut w = Workspaces::default();
        for i in 0..MAX_WORKSPACES {
            assert!(w.add(Path::new(&format!("/w/{i}"))));
        }
        assert!(!w.add(Path::new("/w/0")), "known");
        assert!(!w.add(Path::new("/w/more")));
        assert!(w.said_full);
        assert!(w.remove(Path::new("/w/3")));
        assert!(w.add(Path::new("/w/more")));
    }
}
