//! Where agents work: each process under an agent is placed in its working directory when it
//! starts (or in the workspace that directory is inside), and the catalog watches the secret files of every directory an agent's process
//! works in (catalog/workspaces.rs), until the last such process exits.
use std::path::PathBuf;

use foldhash::{HashMap, HashSet};

use super::Correlator;
use crate::{catalog::Catalog, process::ProcKey};

/// Which agent processes work in which directory.
#[derive(Default)]
pub(super) struct AgentDirs {
    by_process: HashMap<ProcKey, PathBuf>,
    by_dir: HashMap<PathBuf, HashSet<ProcKey>>,
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
        let key = process.key;
        let Some(cwd) = self.tracker.cwd_of(pid) else {
            return;
        };
        // A directory inside a workspace is that workspace (an agent's shell that changes
        // into `src/` works in the same project).
        let dir = self
            .agent_dirs
            .by_dir
            .keys()
            .find(|known| cwd.starts_with(known))
            .cloned()
            .unwrap_or(cwd);
        if self.agent_dirs.by_process.get(&key) == Some(&dir) {
            return;
        }
        self.leave_workspace(key, catalog);
        catalog.add_workspace(&self.policy, &dir);
        self.agent_dirs
            .by_dir
            .entry(dir.clone())
            .or_default()
            .insert(key);
        self.agent_dirs.by_process.insert(key, dir);
    }

    /// `key` exited or moved: the last agent process to leave a directory ends its watch.
    pub(super) fn leave_workspace(&mut self, key: ProcKey, catalog: &mut Catalog) {
        let Some(dir) = self.agent_dirs.by_process.remove(&key) else {
            return;
        };
        let Some(workers) = self.agent_dirs.by_dir.get_mut(&dir) else {
            return;
        };
        workers.remove(&key);
        if workers.is_empty() {
            self.agent_dirs.by_dir.remove(&dir);
            catalog.remove_workspace(&dir);
        }
    }
}
