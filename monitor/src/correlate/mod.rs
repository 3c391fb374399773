//! Joins kernel events into records: who read which credential, and which connections of the
//! same lineage then used it. Pure: fed decoded events and the catalog, returns records.
//!
//! A connect by P is a use of credential C when C was read by P itself, by an ancestor of P (P
//! inherited it), or by a descendant of P in the same session (a credential helper hands the
//! secret up). A read by R is a use of the connections R already holds (ssh connects, then reads
//! its key during authentication).
use std::collections::{HashMap, HashSet, VecDeque};

use monitor_common::FileKey;

use crate::{
    catalog::Catalog,
    clock::Clock,
    decode::{Connect, KernelEvent},
    process::{ProcKey, ProcessTracker},
    record::{CredentialRef, EndpointRef, ProcessRef, Record, Via},
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
    credential: CredentialRef,
    process: ProcessRef,
}

pub struct Correlator {
    pub tracker: ProcessTracker,
    clock: Clock,
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
    pub fn new(tracker: ProcessTracker, clock: Clock) -> Self {
        Self {
            tracker,
            clock,
            reads: VecDeque::new(),
            accessed: HashSet::new(),
            reported_files: HashMap::new(),
            connections: HashMap::new(),
            uses: HashSet::new(),
        }
    }

    /// Handles one event; records it produces are appended to `out`.
    pub fn handle(&mut self, event: &KernelEvent, catalog: &Catalog, out: &mut Vec<Record>) {
        match event {
            KernelEvent::Exec(exec) => self.tracker.on_exec(exec),
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
                let credential = CredentialRef::from(credential);
                let process_ref = ProcessRef::from(&process);
                out.push(Record::CredentialAccess {
                    time: self.clock.rfc3339(*boot_ns),
                    credential: credential.clone(),
                    process: process_ref.clone(),
                    hook: *hook,
                });
                let read = Read {
                    reader: process.key,
                    ancestors: self.tracker.ancestors(process.key, MAX_ANCESTORS),
                    sessionid: process.sessionid,
                    credential,
                    process: process_ref,
                };
                for endpoint in self.connections.get(&process.key).into_iter().flatten() {
                    Self::push_use(
                        &mut self.uses,
                        &self.clock,
                        *boot_ns,
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
            KernelEvent::Connect(connect) => self.on_connect(connect, out),
        }
    }

    fn on_connect(&mut self, c: &Connect, out: &mut Vec<Record>) {
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
        let process_ref = ProcessRef::from(&process);
        let mut uses = Vec::new();
        for read in &self.reads {
            let via = if read.reader == process.key {
                Via::Read
            } else if ancestors.contains(&read.reader) {
                Via::Ancestor
            } else if read.ancestors.contains(&process.key) && read.sessionid == process.sessionid {
                Via::Descendant
            } else {
                continue;
            };
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
        let holds_credential =
            !uses.is_empty() || self.reads.iter().any(|r| r.reader == process.key);
        if holds_credential {
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
