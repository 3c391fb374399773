//! Joins kernel events into records: who read which credential, and which connections of the
//! same lineage then used it. Pure: fed decoded events and the catalog, returns records.
//!
//! A connect by P is a use of credential C when C was read by P itself, by an ancestor of P (P
//! inherited it), by a descendant of P in the same session (a credential helper hands the
//! secret up), or by another process of P's agent when the endpoint is in C's scope (one task
//! reads, the agent hands it to the next). A read by R is a use of the connections R already
//! holds (ssh connects, then reads its key during authentication).
//!
//! A secret variable in the environment at exec is read by that exec, unless the parent held
//! the same secret already: then the children simply inherit it from the first holder.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use monitor_common::FileKey;

use crate::{
    attribution::{self, AgentRef, Candidate},
    catalog::Catalog,
    clock::Clock,
    decode::{Connect, Exec, Hook, KernelEvent},
    policy::{Policy, ProcessFacts, Verdict},
    process::{ProcKey, Process, ProcessTracker},
    record::{self, CredentialRef, EndpointRef, ProcessRef, Record, Via},
};

/// How far up the tree lineage is followed.
const MAX_ANCESTORS: usize = 32;
/// Connections remembered per process, newest kept.
const CONNECTIONS_PER_PROCESS: usize = 64;
/// Credential reads remembered in all, oldest forgotten first.
const MAX_READS: usize = 8192;

struct Read {
    reader: ProcKey,
    /// The reader's ancestors when it read, nearest first.
    ancestors: Vec<ProcKey>,
    sessionid: Option<u32>,
    agent: Option<AgentRef>,
    credential: CredentialRef,
    process: ProcessRef,
}

pub struct Correlator {
    pub tracker: ProcessTracker,
    clock: Clock,
    policy: Arc<Policy>,
    reads: VecDeque<Read>,
    accessed: HashSet<(ProcKey, FileKey)>,
    /// Files each live pid was reported for, so the kernel's dedup map can be cleared on exec
    /// and exit (the pid will be someone else's).
    reported_files: HashMap<u32, Vec<FileKey>>,
    connections: HashMap<ProcKey, VecDeque<EndpointRef>>,
    /// (user pid, credential id, endpoint) already reported.
    uses: HashSet<(u32, String, EndpointRef)>,
}

impl Correlator {
    pub fn new(tracker: ProcessTracker, clock: Clock, policy: Arc<Policy>) -> Self {
        Self {
            tracker,
            clock,
            policy,
            reads: VecDeque::new(),
            accessed: HashSet::new(),
            reported_files: HashMap::new(),
            connections: HashMap::new(),
            uses: HashSet::new(),
        }
    }

    /// Handles one event; records it produces are appended to `out`.
    pub fn handle(&mut self, event: &KernelEvent, catalog: &mut Catalog, out: &mut Vec<Record>) {
        match event {
            KernelEvent::Exec(exec) => self.on_exec(exec, catalog, out),
            KernelEvent::Fork {
                pid,
                ppid,
                start_boot_ns,
                ..
            } => self.tracker.on_fork(*pid, *ppid, *start_boot_ns),
            KernelEvent::Exit { pid, boot_ns } => self.tracker.on_exit(*pid, *boot_ns),
            KernelEvent::FileAccess {
                pid,
                file,
                hook,
                uid,
                comm,
                boot_ns,
            } => {
                self.reported_files.entry(*pid).or_default().push(*file);
                let Some(credential) = catalog.get(file) else {
                    return; // no longer watched: replaced or removed since the kernel saw it
                };
                let process = self.tracker.get_or_learn(*pid, comm, *uid).clone();
                if !self.accessed.insert((process.key, *file)) {
                    return;
                }
                let credential = CredentialRef::new(credential, &catalog.secrets);
                let process_ref = ProcessRef::new(&process, &catalog.secrets);
                self.record_read(&process, credential, process_ref, *hook, *boot_ns, out);
            }
            KernelEvent::Connect(connect) => self.on_connect(connect, &catalog.secrets, out),
        }
    }

    /// Attributes the new program, and reads the secret variables its parent did not hold.
    fn on_exec(&mut self, e: &Exec, catalog: &mut Catalog, out: &mut Vec<Record>) {
        let policy = Arc::clone(&self.policy);
        let cgroup = policy
            .matches_cgroups()
            .then(|| attribution::cgroup_of(e.pid))
            .flatten();
        let candidate = Candidate {
            pid: e.pid,
            originating_uid: e.loginuid.unwrap_or(e.uid),
            facts: ProcessFacts {
                comm: &e.comm,
                exe: &e.filename,
                argv: &e.argv,
                cgroup: cgroup.as_deref(),
            },
            label: e.env.get(&policy.context.label),
        };
        let parent = self.tracker.get(e.ppid).filter(|p| p.key.pid != e.pid);
        let decided = attribution::attribute(&policy, &candidate, parent);
        let inherited = parent.map(|p| p.env_secrets.clone()).unwrap_or_default();
        let mut secrets = Vec::new();
        let mut fresh = Vec::new();
        for (name, value) in &e.env.0 {
            let Some(kind) = policy.secret_variable(name) else {
                continue;
            };
            let print = catalog
                .secrets
                .learn(value, |print| record::env_credential_id(name, print));
            secrets.push(print);
            if !inherited.contains(&print) {
                fresh.push((name.clone(), kind, print));
            }
        }
        self.tracker.on_exec(e, decided, secrets);
        if fresh.is_empty() {
            return;
        }
        let process = self.tracker.get(e.pid).expect("just added").clone();
        let process_ref = ProcessRef::new(&process, &catalog.secrets);
        for (name, kind, print) in fresh {
            let id = record::env_credential_id(&name, print);
            let scope = policy.kind_scope(kind);
            let credential = CredentialRef {
                identity: record::identity(&id, Some(print), &catalog.secrets),
                id,
                kind,
                path: format!("env:{name}"),
                owner: Some(process.originating_uid()),
                context: None,
                scope,
                fingerprint: Some(print),
            };
            let hook = Hook::Environment;
            self.record_read(
                &process,
                credential,
                process_ref.clone(),
                hook,
                e.boot_ns,
                out,
            );
        }
    }

    /// A credential read: its access record, its uses of connections the reader already
    /// holds, and a read remembered for the connections to come.
    fn record_read(
        &mut self,
        reader: &Process,
        credential: CredentialRef,
        process_ref: ProcessRef,
        hook: Hook,
        boot_ns: u64,
        out: &mut Vec<Record>,
    ) {
        out.push(Record::CredentialAccess {
            time: self.clock.rfc3339(boot_ns),
            credential: credential.clone(),
            process: process_ref.clone(),
            hook,
        });
        let read = Read {
            reader: reader.key,
            ancestors: self.tracker.ancestors(reader.key, MAX_ANCESTORS),
            sessionid: reader.sessionid,
            agent: reader.attribution.agent.clone(),
            credential,
            process: process_ref,
        };
        for endpoint in self.connections.get(&reader.key).into_iter().flatten() {
            Self::push_use(
                &mut self.uses,
                &self.clock,
                boot_ns,
                &read,
                &read.process,
                endpoint,
                Via::HeldConnection,
                out,
            );
        }
        if self.reads.len() >= MAX_READS {
            self.reads.pop_front();
        }
        self.reads.push_back(read);
    }

    fn on_connect(&mut self, c: &Connect, secrets: &crate::redact::Secrets, out: &mut Vec<Record>) {
        let process = self.tracker.get_or_learn(c.pid, &c.comm, c.uid).clone();
        let endpoint = EndpointRef {
            ip: c.ip.to_string(),
            port: c.port,
            protocol: c.protocol,
            host: None,
        };
        let held = self.connections.entry(process.key).or_default();
        if held.len() >= CONNECTIONS_PER_PROCESS {
            held.pop_front();
        }
        held.push_back(endpoint.clone());

        let ancestors = self.tracker.ancestors(process.key, MAX_ANCESTORS);
        let agent = process.attribution.agent.as_ref();
        let mut holds_credential = false;
        let mut used = Vec::new();
        for read in &self.reads {
            holds_credential |= read.reader == process.key;
            let via = if read.reader == process.key {
                Via::Read
            } else if ancestors.contains(&read.reader) {
                Via::Ancestor
            } else if read.ancestors.contains(&process.key) && read.sessionid == process.sessionid {
                Via::Descendant
            } else if agent.is_some()
                && read.agent.as_ref() == agent
                && endpoint.verdict(&read.credential.scope) == Verdict::Inside
            {
                Via::Agent
            } else {
                continue;
            };
            used.push((read, via));
        }
        // Most connects on a host are by processes that hold no credential: the process record
        // (argv redaction included) is made only for those that do.
        if used.is_empty() && !holds_credential {
            return;
        }
        let process_ref = ProcessRef::new(&process, secrets);
        let mut uses = Vec::new();
        for (read, via) in used {
            Self::push_use(
                &mut self.uses,
                &self.clock,
                c.boot_ns,
                read,
                &process_ref,
                &endpoint,
                via,
                &mut uses,
            );
        }
        if holds_credential || !uses.is_empty() {
            out.push(Record::Connection {
                time: self.clock.rfc3339(c.boot_ns),
                process: process_ref,
                endpoint,
            });
        }
        out.append(&mut uses);
    }

    #[expect(clippy::too_many_arguments, reason = "a use is made of all of these")]
    fn push_use(
        seen: &mut HashSet<(u32, String, EndpointRef)>,
        clock: &Clock,
        boot_ns: u64,
        read: &Read,
        user: &ProcessRef,
        endpoint: &EndpointRef,
        via: Via,
        out: &mut Vec<Record>,
    ) {
        if !seen.insert((user.pid, read.credential.id.clone(), endpoint.clone())) {
            return;
        }
        out.push(Record::CredentialUse {
            time: clock.rfc3339(boot_ns),
            credential: read.credential.clone(),
            process: user.clone(),
            endpoint: endpoint.clone(),
            via,
            reader: read.process.clone(),
        });
    }

    /// Files the kernel reported for `pid`; the caller clears them from the kernel's dedup map
    /// when `pid` execs or exits, so the next program under that pid is reported afresh.
    pub fn take_reported_files(&mut self, pid: u32) -> Vec<FileKey> {
        self.reported_files.remove(&pid).unwrap_or_default()
    }

    /// Forgets exited processes past their time, and what only they held.
    pub fn sweep(&mut self, now_boot_ns: u64) {
        let gone: HashSet<ProcKey> = self.tracker.sweep(now_boot_ns).into_iter().collect();
        if gone.is_empty() {
            return;
        }
        self.connections.retain(|k, _| !gone.contains(k));
        self.accessed.retain(|(k, _)| !gone.contains(k));
        // A read stays while its reader or one of its ancestors can still connect.
        let tracker = &self.tracker;
        self.reads.retain(|r| {
            std::iter::once(&r.reader)
                .chain(&r.ancestors)
                .any(|k| tracker.get_key(*k).is_some())
        });
        self.uses.retain(|(pid, _, _)| tracker.get(*pid).is_some());
    }
}

#[cfg(test)]
mod tests;
