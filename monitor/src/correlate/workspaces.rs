//! Where agents work: each process under an agent is placed, when it starts, in the workspace
//! its working directory is (catalog/workspaces.rs): a watched workspace it is inside (at most
//! one level down, as deep as the workspace is looked in), else that directory itself. The
//! catalog watches a workspace's secret files while an agent process works there; a workspace
//! that finds every place taken waits, and is watched when one frees. Processes whose exit
//! was lost are let go at the sweep.
use std::path::{Path, PathBuf};

use foldhash::{HashMap, HashSet};

use super::Correlator;
use crate::{catalog::Catalog, process::ProcKey};

/// Which agent processes work in which directory, and whether the catalog watches it.
#[derive(Default)]
pub(super) struct AgentDirs {
    by_process: HashMap<ProcKey, PathBuf>,
    by_dir: HashMap<PathBuf, Workspace>,
}

#[derive(Default)]
struct Workspace {
    workers: HashSet<ProcKey>,
    /// The user whose workspace it is (the first worker's).
    uid: u32,
    watched: bool,
}

impl AgentDirs {
    /// The watched workspace `cwd` is in: the deepest one that is `cwd` or its parent.
    fn watched_around(&self, cwd: &Path) -> Option<PathBuf> {
        [Some(cwd), cwd.parent()]
            .into_iter()
            .flatten()
            .find(|dir| self.by_dir.get(*dir).is_some_and(|w| w.watched))
            .map(Path::to_path_buf)
    }
}

impl Correlator {
    /// The processes under agents that run already (at start): their directories are
    /// workspaces.
    pub fn seed_workspaces(&mut self, catalog: &mut Catalog) {
        let pids: Vec<u32> = self
            .tracker
            .processes()
            .filter(|p| p.attribution.agent.is_some())
            .map(|p| p.key.pid)
            .collect();
        for pid in pids {
            self.place_in_workspace(pid, catalog);
        }
    }

    /// A process that exec'd: if it works for an agent, its working directory is a workspace.
    pub(super) fn place_in_workspace(&mut self, pid: u32, catalog: &mut Catalog) {
        let Some(process) = self.tracker.get(pid) else {
            return;
        };
        if process.attribution.agent.is_none() {
            return;
        }
        let (key, uid) = (process.key, process.uid);
        let Some(cwd) = self.tracker.cwd_of(pid) else {
            return;
        };
        let dir = match self.agent_dirs.watched_around(&cwd) {
            Some(dir) => dir,
            None if Catalog::can_be_workspace(&cwd, uid) => cwd,
            None => {
                self.leave_workspace(key, catalog);
                return;
            }
        };
        if self.agent_dirs.by_process.get(&key) == Some(&dir) {
            return;
        }
        self.leave_workspace(key, catalog);
        let workspace = self
            .agent_dirs
            .by_dir
            .entry(dir.clone())
            .or_insert_with(|| Workspace {
                uid,
                ..Workspace::default()
            });
        workspace.workers.insert(key);
        if !workspace.watched {
            workspace.watched = catalog.add_workspace(&self.policy, &dir, workspace.uid);
        }
        self.agent_dirs.by_process.insert(key, dir);
    }

    /// `key` exited or moved: the last agent process to leave a directory ends its watch, and
    /// a workspace that waited takes its place.
    pub(super) fn leave_workspace(&mut self, key: ProcKey, catalog: &mut Catalog) {
        let Some(dir) = self.agent_dirs.by_process.remove(&key) else {
            return;
        };
        let Some(workspace) = self.agent_dirs.by_dir.get_mut(&dir) else {
            return;
        };
        workspace.workers.remove(&key);
        if !workspace.workers.is_empty() {
            return;
        }
        let watched = workspace.watched;
        self.agent_dirs.by_dir.remove(&dir);
        if !watched {
            return;
        }
        catalog.remove_workspace(&dir);
        let policy = &self.policy;
        if let Some((waiting, workspace)) =
            self.agent_dirs.by_dir.iter_mut().find(|(_, w)| !w.watched)
        {
            workspace.watched = catalog.add_workspace(policy, waiting, workspace.uid);
        }
    }

    /// Lets go the agent processes the tracker no longer knows (their exit was lost).
    pub fn sweep_workspaces(&mut self, catalog: &mut Catalog) {
        let gone: Vec<ProcKey> = self
            .agent_dirs
            .by_process
            .keys()
            .filter(|key| self.tracker.get_key(**key).is_none())
            .copied()
            .collect();
        for key in gone {
            self.leave_workspace(key, catalog);
        }
    }
}
