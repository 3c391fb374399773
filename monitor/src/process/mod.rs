//! Who is process P: the tracker. Seeded from procfs at start so older processes have parent,
//! exe and users; then kept by exec, fork and exit events. A process is identified by pid and
//! start time, because pids are reused.
pub mod attribution;
mod procfs;

use std::{fs, path::PathBuf, sync::Arc};

use foldhash::{HashMap, HashSet};

use self::{
    attribution::{Attribution, Candidate},
    procfs::{read_procfs, read_stat},
};
use crate::{
    catalog::{Catalog, contents::mcp::ToolCommand},
    decode::Exec,
    fingerprint::Fingerprint,
    policy::{Policy, ProcessFacts},
    record::ProcessRef,
    redact::Secrets,
};

/// Process start in clock ticks since boot, as /proc/PID/stat reports it.
pub type StartTicks = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcKey {
    pub pid: u32,
    pub start: StartTicks,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Process {
    pub key: ProcKey,
    pub ppid: u32,
    pub uid: u32,
    /// The user who logged in (audit loginuid); `None` when unset (daemons, CI).
    pub loginuid: Option<u32>,
    pub sessionid: Option<u32>,
    /// Boot time (ns) of the exit, for processes kept a while after exit.
    pub exited_ns: Option<u64>,
    /// What exec gave it; a forked child shares its parent's until it execs itself. A process
    /// reads its image's fields as its own (`Deref`).
    pub image: Arc<Image>,
}

/// What a process has from its last exec: its program, and who it acts for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Image {
    pub comm: String,
    pub exe: String,
    pub argv: Vec<String>,
    /// Whether the kernel cut the command line short (its last argument is partial).
    pub argv_cut: bool,
    /// Owner of the executable (symlinks resolved), as the kernel saw it at exec or procfs at
    /// start.
    pub exe_owner: Option<u32>,
    /// The executable's path, symlinks resolved, read from procfs at exec when the program is
    /// named like an allowed reader of some credential: a short-lived reader may be gone by the
    /// time its read is handled (a link named `git` to python must show as python).
    pub resolved_exe: Option<String>,
    /// Its context and agent, decided at exec.
    pub attribution: Attribution,
    /// Fingerprints of the secret variables in its environment at exec.
    pub env_secrets: Vec<Fingerprint>,
}

impl std::ops::Deref for Process {
    type Target = Image;

    fn deref(&self) -> &Image {
        &self.image
    }
}

impl Process {
    /// A process known only from an event: what the event says, nothing more.
    pub fn unknown(key: ProcKey, ppid: u32, comm: &str, uid: u32) -> Self {
        Self {
            key,
            ppid,
            uid,
            loginuid: None,
            sessionid: None,
            exited_ns: None,
            image: Arc::new(Image {
                comm: comm.to_owned(),
                ..Image::default()
            }),
        }
    }

    /// Its image, to change: shared images are copied first.
    pub fn image_mut(&mut self) -> &mut Image {
        Arc::make_mut(&mut self.image)
    }

    /// The user the action is for: the login user where one is set, else the real uid.
    pub fn originating_uid(&self) -> u32 {
        self.loginuid.unwrap_or(self.uid)
    }

    /// The process as records show it, its argv redacted with every secret `secrets` knows.
    /// `resolved`: the path of the executable it runs, symlinks resolved, where procfs could
    /// still tell (else the path it was executed by).
    pub fn record(&self, secrets: &Secrets, resolved: Option<String>) -> ProcessRef {
        let exe = resolved.unwrap_or_else(|| self.exe.clone());
        let exe_owner = self.exe_owner;
        let context = self.attribution.context.clone().unwrap_or_else(|| {
            let session = self
                .sessionid
                .map_or_else(|| "none".to_owned(), |s| s.to_string());
            format!("uid:{}/session:{session}", self.originating_uid())
        });
        ProcessRef {
            pid: self.key.pid,
            ppid: self.ppid,
            comm: self.comm.clone(),
            exe,
            exe_owner,
            argv: secrets.redact_argv(&self.argv, self.argv_cut),
            uid: self.uid,
            loginuid: self.loginuid,
            context,
            agent: self.attribution.agent.clone(),
        }
    }
}

/// How long an exited process is kept when no live process descends from it: long enough for
/// events already in flight that name it. One with live descendants is kept while they live,
/// for their lineage. (A credential helper that exits before its parent connects needs
/// neither: its read remembers its ancestors.) Short, because a storm of short-lived processes
/// would otherwise fill memory.
const EXITED_GRACE_NS: u64 = 2 * 1_000_000_000;
/// How far up lineage is followed when deciding what live processes still need.
const MAX_DEPTH: usize = 64;

pub struct ProcessTracker {
    /// Where processes are looked up when events alone do not tell (normally /proc). `None`
    /// for recorded streams and tests: then the tracker knows only what events say, and every
    /// stage after decode is pure.
    procfs: Option<PathBuf>,
    by_pid: HashMap<u32, Process>,
    /// Exited processes whose pid was taken by a new one, kept for lineage until their TTL.
    exited: HashMap<ProcKey, Process>,
    ns_per_tick: u64,
}

impl ProcessTracker {
    pub fn new(ticks_per_second: u64, procfs: Option<PathBuf>) -> Self {
        Self {
            procfs,
            by_pid: HashMap::default(),
            exited: HashMap::default(),
            ns_per_tick: 1_000_000_000 / ticks_per_second.max(1),
        }
    }

    pub fn ticks(&self, boot_ns: u64) -> StartTicks {
        boot_ns / self.ns_per_tick
    }

    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    /// Reads every process in procfs, if the tracker has one. Processes that vanish meanwhile
    /// are skipped: they were racing with us and their exit event will not come.
    /// `policy` decides their contexts and agents, parents first. The fingerprints of their
    /// secret variables are learned too, so that their children's execs do not count as fresh
    /// reads of what the family held already.
    pub fn seed_from_procfs(
        &mut self,
        policy: &Policy,
        catalog: &mut Catalog,
    ) -> std::io::Result<usize> {
        let Some(proc_root) = self.procfs.clone() else {
            return Ok(0);
        };
        let proc_root = proc_root.as_path();
        let mut seeded = 0;
        for entry in fs::read_dir(proc_root)? {
            let Some(pid) = entry?
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(mut process) = read_procfs(proc_root, pid) {
                // The environment gives the context label and the secrets the process holds.
                let environ = fs::read(proc_root.join(pid.to_string()).join("environ"));
                for var in environ.iter().flat_map(|e| e.split(|&b| b == 0)) {
                    let Some((name, value)) = std::str::from_utf8(var)
                        .ok()
                        .and_then(|v| v.split_once('='))
                    else {
                        continue;
                    };
                    if name == policy.context.label {
                        process.image_mut().attribution.label = Some(value.to_owned()); // the last one wins
                    }
                    if policy.secret_variable(name).is_some() {
                        let print = catalog.learn_variable(name, value);
                        process.image_mut().env_secrets.push(print);
                    }
                }
                self.by_pid.insert(pid, process);
                seeded += 1;
            }
        }
        let mut order: Vec<ProcKey> = self.by_pid.values().map(|p| p.key).collect();
        order.sort_by_key(|k| (k.start, k.pid));
        let needs_cgroup = policy.matches_cgroups();
        for key in order {
            let me = &self.by_pid[&key.pid];
            let cgroup = needs_cgroup.then(|| self.cgroup_of(key.pid)).flatten();
            let candidate = Candidate {
                pid: key.pid,
                uid: me.uid,
                originating_uid: me.originating_uid(),
                facts: ProcessFacts {
                    comm: &me.comm,
                    exe: &me.exe,
                    argv: &me.argv,
                    cgroup: cgroup.as_deref(),
                },
                label: me.attribution.label.as_deref(),
            };
            let parent = self.by_pid.get(&me.ppid).filter(|p| p.key != key);
            let decided = attribution::attribute(policy, catalog.tools(), &candidate, parent);
            let me = self.by_pid.get_mut(&key.pid).expect("seeded");
            me.image_mut().attribution = decided;
        }
        Ok(seeded)
    }

    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.by_pid.get(&pid)
    }

    pub fn get_key(&self, key: ProcKey) -> Option<&Process> {
        self.by_pid
            .get(&key.pid)
            .filter(|p| p.key == key)
            .or_else(|| self.exited.get(&key))
    }

    /// A process we have not seen (an event raced ahead of procfs, or a lost fork): look it up
    /// in procfs, else make the best record the event itself allows.
    pub fn get_or_learn(&mut self, pid: u32, comm: &str, uid: u32) -> &Process {
        let procfs = self.procfs.as_deref();
        self.by_pid.entry(pid).or_insert_with(|| {
            procfs
                .and_then(|root| read_procfs(root, pid))
                .unwrap_or_else(|| Process::unknown(ProcKey { pid, start: 0 }, 0, comm, uid))
        })
    }

    /// The path of the executable `key` runs, symlinks resolved (a link named `git` to python
    /// is python), from procfs. `None` without procfs, or when the process is gone (a short
    /// read-and-exit) or its pid is someone else's now.
    pub fn resolved_exe(&self, key: ProcKey) -> Option<String> {
        if let Some(exe) = self.get_key(key).and_then(|p| p.image.resolved_exe.clone()) {
            return Some(exe);
        }
        let dir = self.procfs.as_ref()?.join(key.pid.to_string());
        let path = fs::read_link(dir.join("exe")).ok()?;
        // The pid still belongs to the process we mean (not reused since).
        let still = read_stat(&dir).is_some_and(|s| s.start == key.start);
        still.then(|| path.display().to_string())
    }

    /// `pid`'s executable, symlinks resolved, from procfs, as it is now.
    fn read_exe(&self, pid: u32) -> Option<String> {
        let link = self.procfs.as_ref()?.join(pid.to_string()).join("exe");
        fs::read_link(link).ok().map(|p| p.display().to_string())
    }

    /// The cgroup (v2) path of `pid`, when policy matches on cgroups. Read from procfs at exec:
    /// a process that is already gone has none.
    /// The working directory of `pid`, from procfs (None without procfs, or once it is gone).
    pub fn cwd_of(&self, pid: u32) -> Option<PathBuf> {
        let link = self.procfs.as_ref()?.join(pid.to_string()).join("cwd");
        fs::read_link(link).ok()
    }

    /// Every process known.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.by_pid.values()
    }

    pub fn cgroup_of(&self, pid: u32) -> Option<String> {
        let path = self.procfs.as_ref()?.join(pid.to_string()).join("cgroup");
        let text = fs::read_to_string(path).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned)
    }

    pub fn on_fork(&mut self, pid: u32, ppid: u32, start_boot_ns: u64) {
        let start = self.ticks(start_boot_ns);
        let parent = self.by_pid.get(&ppid).cloned();
        let child = match parent {
            Some(parent) => Process {
                key: ProcKey { pid, start },
                ppid,
                exited_ns: None,
                ..parent
            },
            None => Process::unknown(ProcKey { pid, start }, ppid, "", 0),
        };
        self.replace(child);
    }

    /// exec keeps pid and start time and replaces the program image; policy decides who the
    /// new program acts for (attribution.rs). `env_secrets`: its secret variables' fingerprints.
    /// `tools`: the MCP configurations' local servers (a process running one is in its
    /// context).
    pub fn on_exec(
        &mut self,
        e: &Exec,
        policy: &Policy,
        tools: &[ToolCommand],
        env_secrets: Vec<Fingerprint>,
    ) {
        let cgroup = policy
            .matches_cgroups()
            .then(|| self.cgroup_of(e.pid))
            .flatten();
        let candidate = Candidate {
            pid: e.pid,
            uid: e.uid,
            originating_uid: e.loginuid.unwrap_or(e.uid),
            facts: ProcessFacts {
                comm: &e.comm,
                exe: &e.filename,
                argv: &e.argv,
                cgroup: cgroup.as_deref(),
            },
            label: e.env.get(&policy.context.label),
        };
        let parent = self.by_pid.get(&e.ppid).filter(|p| p.key.pid != e.pid);
        let attribution = attribution::attribute(policy, tools, &candidate, parent);
        let start = self.ticks(e.start_boot_ns);
        let process = Process {
            key: ProcKey { pid: e.pid, start },
            ppid: e.ppid,
            uid: e.uid,
            loginuid: e.loginuid,
            sessionid: e.sessionid,
            exited_ns: None,
            image: Arc::new(Image {
                comm: e.comm.clone(),
                exe: e.filename.clone(),
                argv: e.argv.clone(),
                argv_cut: e.argv_cut,
                exe_owner: e.exe_owner,
                resolved_exe: policy
                    .names_a_reader(&e.comm, &e.filename)
                    .then(|| self.read_exe(e.pid))
                    .flatten(),
                attribution,
                env_secrets,
            }),
        };
        self.replace(process);
    }

    pub fn on_exit(&mut self, pid: u32, boot_ns: u64) {
        if let Some(p) = self.by_pid.get_mut(&pid) {
            p.exited_ns = Some(boot_ns);
        }
    }

    /// Inserts `process`; an exited holder of the same pid is kept aside for lineage lookups.
    fn replace(&mut self, process: Process) {
        if let Some(old) = self.by_pid.insert(process.key.pid, process)
            && old.exited_ns.is_some()
        {
            self.exited.insert(old.key, old);
        }
    }

    /// Each process's context label as its environment gave it, or as its nearest ancestor's
    /// did (what the kernel's exec hook would have taken for it): (pid, label).
    pub fn context_labels(&self) -> Vec<(u32, String)> {
        let raw = |p: &Process| {
            let label = p.attribution.label.as_deref()?;
            // `attribute` keeps a label from claiming a tool's context; the kernel has the
            // value as it is.
            Some(match label.strip_prefix("label:") {
                Some(rest) if rest.starts_with("tool:") => rest.to_owned(),
                _ => label.to_owned(),
            })
        };
        self.by_pid
            .values()
            .filter_map(|p| {
                let own = raw(p);
                let label = own.or_else(|| {
                    self.ancestors(p.key, 64)
                        .iter()
                        .find_map(|k| self.get_key(*k).and_then(raw))
                })?;
                Some((p.key.pid, label))
            })
            .collect()
    }

    /// Ancestors of `key`, nearest first, at most `limit` of them.
    pub fn ancestors(&self, key: ProcKey, limit: usize) -> Vec<ProcKey> {
        let mut chain = Vec::new();
        let mut current = self.get_key(key).map(|p| p.ppid);
        while let Some(ppid) = current {
            if ppid == 0 || chain.len() >= limit {
                break;
            }
            let Some(parent) = self.by_pid.get(&ppid) else {
                break;
            };
            if chain.contains(&parent.key) || parent.key == key {
                break; // a loop from pid reuse; stop rather than spin
            }
            chain.push(parent.key);
            current = Some(parent.ppid);
        }
        chain
    }

    /// Process `pid` and those of its ancestors that share its user and session, nearest
    /// first, at most `limit`: the processes the rules count as using what `pid` reads (a read
    /// is handed up within a session). Init is never one.
    pub fn same_user_lineage(&self, pid: u32, limit: usize) -> Vec<ProcKey> {
        let Some(process) = self.get(pid) else {
            return Vec::new();
        };
        let mut lineage = vec![process.key];
        for key in self.ancestors(process.key, limit) {
            let Some(ancestor) = self.get_key(key) else {
                break;
            };
            if key.pid <= 1
                || ancestor.uid != process.uid
                || ancestor.sessionid != process.sessionid
            {
                break;
            }
            lineage.push(key);
        }
        lineage
    }

    /// Forgets processes that exited more than the TTL before `now_ns`.
    pub fn sweep(&mut self, now_ns: u64) -> Vec<ProcKey> {
        let past_grace = |p: &Process| {
            p.exited_ns
                .is_some_and(|t| now_ns.saturating_sub(t) > EXITED_GRACE_NS)
        };
        if !self
            .by_pid
            .values()
            .chain(self.exited.values())
            .any(past_grace)
        {
            return Vec::new(); // nothing to forget: skip the lineage walk, the costly part
        }
        let needed: HashSet<ProcKey> = self
            .by_pid
            .values()
            .filter(|p| p.exited_ns.is_none())
            .flat_map(|p| self.ancestors(p.key, MAX_DEPTH))
            .collect();
        let expired = |p: &Process| past_grace(p) && !needed.contains(&p.key);
        let mut gone: Vec<ProcKey> = self
            .by_pid
            .values()
            .filter(|p| expired(p))
            .map(|p| p.key)
            .collect();
        self.by_pid.retain(|_, p| !expired(p));
        gone.extend(self.exited.values().filter(|p| expired(p)).map(|p| p.key));
        self.exited.retain(|_, p| !expired(p));
        gone
    }
}

#[cfg(test)]
mod tests;
