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
//!
//! Endpoints are named by the DNS answers the host received (names/), and a TCP connection of a
//! credential holder waits for its first bytes, whose TLS server name is the better name
//! (pending.rs).
mod copies;
mod pending;
mod reads;
mod variables;
mod workspaces;

use std::{collections::VecDeque, sync::Arc};

use foldhash::{HashMap, HashSet};
use monitor_common::{DNS_PORT, FileKey};

use crate::{
    catalog::Catalog,
    clock::Clock,
    decode::{Connect, KernelEvent, Payload, PayloadKind},
    fingerprint::Fingerprint,
    names::{NameCounts, Namer, Resolvers, Settled},
    policy::Policy,
    process::{ProcKey, Process, ProcessTracker},
    proof,
    record::{CredentialRef, EndpointRef, ProcessRef, Record, Via},
    redact::Secrets,
    vocab::{Enforced, Hook, HostSource, Protocol, RuleId},
};
use reads::{Connector, Read, ReadLog};

/// How far up the tree lineage is followed.
const MAX_ANCESTORS: usize = 32;
/// Connections remembered per process, newest kept.
const CONNECTIONS_PER_PROCESS: usize = 64;
/// Uses remembered (to report each once) across all processes: a long-lived process that
/// connects to ever new addresses with a credential would grow them without end. Past this
/// they are forgotten at once (counted): a use may then be reported again, never missed.
const MAX_USES: usize = if cfg!(test) { 256 } else { 65_536 };
/// How a credential was reached: the hook that saw it, what read denial made of it (a dry
/// run's `would-deny`; a refused open is no read), and when.
struct Access {
    hook: Hook,
    enforcement: Option<Enforced>,
    enforcement_rule: Option<RuleId>,
    boot_ns: u64,
}

/// A connection a process made: its socket cookie (0 when unknown), where it went, whether
/// its first bytes were seen (its name is as good as it will get), and until when its records
/// wait for its first request (0: they do not).
struct Held {
    cookie: u64,
    endpoint: EndpointRef,
    boot_ns: u64,
    settled: bool,
    request_deadline_ns: u64,
}

impl Held {
    /// Whether records about it should wait for its first bytes: a TCP connection, not named
    /// yet, within `WAIT_NS` of its connect. (Cookie 0: a recorded stream, which has none.)
    fn awaits_name(&self, now_ns: u64) -> bool {
        self.cookie != 0
            && self.endpoint.protocol == Protocol::Tcp
            && !self.settled
            && now_ns < self.boot_ns.saturating_add(pending::WAIT_NS)
    }

    /// Whether records about it should wait for its first request (see `pending`).
    fn awaits_request(&self, now_ns: u64) -> bool {
        now_ns < self.request_deadline_ns
    }
}

/// A use is reported once per (user pid, credential id, address, port, protocol, host name,
/// claimed host name): a claim that differs (a late hello) is a new fact.
type UseKey = (
    u32,
    String,
    String,
    u16,
    Protocol,
    Option<String>,
    Option<String>,
);

pub struct Correlator {
    tracker: ProcessTracker,
    clock: Clock,
    policy: Arc<Policy>,
    reads: ReadLog,
    /// (process, file) pairs reported. The kernel reports each pair once too, but from an LRU
    /// map: under a storm it may forget a pair of a live process and report it again.
    accessed: HashSet<(ProcKey, FileKey)>,
    connections: HashMap<ProcKey, VecDeque<Held>>,
    /// Connections forgotten past `CONNECTIONS_PER_PROCESS`.
    connections_evicted: u64,
    uses: HashSet<UseKey>,
    /// Uses forgotten past `MAX_USES`.
    uses_evicted: u64,
    namer: Namer,
    pending: pending::Pending,
    /// Process records by process, with the number of known secrets they were redacted with
    /// and whether their executable was resolved: redacting argv (fingerprints over every
    /// argument) is costly, and a process that reads many credentials would pay it for each.
    process_refs: HashMap<ProcKey, (u64, bool, Arc<ProcessRef>)>,
    agent_dirs: workspaces::AgentDirs,
    /// The credentials of secret variables seen at exec, by fingerprint, newest last: a copy
    /// of one sent by another process is known by it (proof of use). Bounded as the secrets
    /// learned from variables are.
    env_credentials: HashMap<Fingerprint, Arc<CredentialRef>>,
    env_order: VecDeque<Fingerprint>,
    /// Processes whose TLS writes keytrail reads (a hooked TLS library is in their mappings):
    /// their named TLS connections wait for the first request.
    tls_writers: HashSet<u32>,
    tls_writes: proof::TlsWrites,
}

impl Correlator {
    pub fn new(
        tracker: ProcessTracker,
        clock: Clock,
        policy: Arc<Policy>,
        resolvers: Resolvers,
    ) -> Self {
        Self {
            tracker,
            clock,
            policy,
            reads: ReadLog::default(),
            accessed: HashSet::default(),
            connections: HashMap::default(),
            connections_evicted: 0,
            uses: HashSet::default(),
            uses_evicted: 0,
            namer: Namer::new(resolvers),
            pending: pending::Pending::default(),
            process_refs: HashMap::default(),
            agent_dirs: workspaces::AgentDirs::default(),
            env_credentials: HashMap::default(),
            env_order: VecDeque::new(),
            tls_writers: HashSet::default(),
            tls_writes: proof::TlsWrites::default(),
        }
    }

    /// Policy was reloaded: the processes that exec from now on are attributed by it, and the
    /// records made from now on judged by it.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.policy = policy;
    }

    /// Process `pid` writes into TLS connections through a library keytrail hooked: its first
    /// request in each says which credential went there.
    pub fn writes_tls(&mut self, pid: u32) {
        self.tls_writers.insert(pid);
    }

    /// `pid` and its ancestors of the same user and session.
    pub fn holders_by_reading(&self, pid: u32) -> Vec<ProcKey> {
        self.tracker.same_user_lineage(pid, MAX_ANCESTORS)
    }

    /// Processes tracked now (running, or exited with a descendant alive).
    pub fn tracked_processes(&self) -> usize {
        self.tracker.len()
    }

    /// Whether the process `key` is still known (running, or exited with a descendant alive).
    pub fn tracks(&self, key: ProcKey) -> bool {
        self.tracker.get_key(key).is_some()
    }

    /// The record of `process`, redacted with every secret known now. With `resolve_exe` (for
    /// a credential whose readers are checked), the executable is looked up in procfs, which
    /// costs two reads of /proc: only when a rule needs it.
    fn process_ref(
        &mut self,
        process: &Process,
        secrets: &Secrets,
        resolve_exe: bool,
    ) -> Arc<ProcessRef> {
        let generation = secrets.generation();
        match self.process_refs.get(&process.key) {
            Some((g, resolved, r)) if *g == generation && (*resolved || !resolve_exe) => r.clone(),
            _ => {
                let exe = resolve_exe
                    .then(|| self.tracker.resolved_exe(process.key))
                    .flatten();
                let r = Arc::new(process.record(secrets, exe));
                self.process_refs
                    .insert(process.key, (generation, resolve_exe, r.clone()));
                r
            }
        }
    }

    /// The record of the process `pid`, when the tracker knows it.
    pub fn describe(&mut self, pid: u32, secrets: &Secrets) -> Option<Arc<ProcessRef>> {
        let process = self.tracker.get(pid)?.clone();
        Some(self.process_ref(&process, secrets, false))
    }

    /// Reads and connections forgotten so far to stay bounded: (reads, connections).
    pub fn evicted(&self) -> (u64, u64, u64) {
        (
            self.reads.evicted,
            self.connections_evicted,
            self.uses_evicted,
        )
    }

    /// What name learning saw so far.
    pub fn name_counts(&self) -> NameCounts {
        self.namer.counts
    }

    /// Releases the records of connections that waited long enough for their first bytes
    /// (all of them when `now_boot_ns` is `u64::MAX`, at stop).
    pub fn tick(&mut self, now_boot_ns: u64, out: &mut Vec<Record>) {
        for cookie in self.pending.due(now_boot_ns) {
            let records = self.pending.expire(cookie, now_boot_ns);
            self.emit(records, out);
        }
    }

    /// Handles one event; records it produces are appended to `out`.
    pub fn handle(&mut self, event: &KernelEvent, catalog: &mut Catalog, out: &mut Vec<Record>) {
        match event {
            KernelEvent::Exec(exec) => {
                // Whose writes are read is told again at the new program's first connect.
                self.tls_writers.remove(&exec.pid);
                self.on_exec(exec, catalog, out);
                self.place_in_workspace(exec.pid, catalog);
            }
            KernelEvent::Fork {
                pid,
                ppid,
                start_boot_ns,
                ..
            } => self.tracker.on_fork(*pid, *ppid, *start_boot_ns),
            KernelEvent::Exit { pid, boot_ns } => {
                if let Some(key) = self.tracker.get(*pid).map(|p| p.key) {
                    self.leave_workspace(key, catalog);
                    self.no_more_requests(key, out);
                }
                self.tracker.on_exit(*pid, *boot_ns);
                self.tls_writers.remove(pid);
            }
            KernelEvent::FileAccess {
                pid,
                file,
                hook,
                uid,
                comm,
                enforcement,
                enforcement_rule,
                boot_ns,
            } => {
                let Some(credential) = catalog.get(file) else {
                    return; // no longer watched: replaced or removed since the kernel saw it
                };
                let process = self.tracker.get_or_learn(*pid, comm, *uid).clone();
                let credential = Arc::clone(&credential.record);
                let checks_readers = !credential.readers.is_empty();
                if *enforcement == Some(Enforced::Denied) || *hook == Hook::Move {
                    // Refused, or a move: the process read nothing, and holds nothing. Its
                    // access is reported (each once per process: the kernel dedups them).
                    let process_ref = self.process_ref(&process, catalog.secrets(), true);
                    out.push(Record::CredentialAccess {
                        time: self.clock.at(*boot_ns),
                        credential,
                        process: process_ref,
                        hook: *hook,
                        enforcement: *enforcement,
                        enforcement_rule: *enforcement_rule,
                    });
                    return;
                }
                if !self.accessed.insert((process.key, *file)) {
                    return;
                }
                let process_ref = self.process_ref(&process, catalog.secrets(), checks_readers);
                let access = Access {
                    hook: *hook,
                    enforcement: *enforcement,
                    enforcement_rule: *enforcement_rule,
                    boot_ns: *boot_ns,
                };
                self.record_read(&process, credential, process_ref, access, out);
            }
            KernelEvent::Connect(connect) => self.on_connect(connect, catalog.secrets(), out),
            KernelEvent::Payload(payload) if payload.kind == PayloadKind::TlsPlaintext => {
                self.on_tls_write(payload, catalog, out);
            }
            KernelEvent::Payload(payload) => {
                let sent = (payload.kind == PayloadKind::HttpRequest)
                    .then(|| proof::inspect(&payload.data, catalog.secrets()))
                    .flatten();
                if let Some(sent) = &sent {
                    log::debug!(
                        "pid {} sent an HTTP request carrying {} credential values",
                        payload.pid,
                        sent.prints.len()
                    );
                }
                if let Some(settled) = self.namer.on_payload(payload) {
                    self.on_named(payload, settled, sent.as_ref(), catalog, out);
                }
            }
        }
    }

    /// A connection's first bytes were seen: name it, and release its records, proven by the
    /// request they were (`sent`), if one was read.
    fn on_named(
        &mut self,
        payload: &Payload,
        settled: Settled,
        sent: Option<&proof::Sent>,
        catalog: &Catalog,
        out: &mut Vec<Record>,
    ) {
        let pid = payload.pid;
        let mut answered = false;
        // A TLS connection of a process whose writes keytrail reads: its records wait for the
        // request, which says which credential went there.
        let request_deadline_ns =
            if payload.kind == PayloadKind::TlsHello && self.tls_writers.contains(&pid) {
                payload.boot_ns.saturating_add(pending::REQUEST_WAIT_NS)
            } else {
                0
            };
        if let Some(process) = self.tracker.get(pid).cloned() {
            let askers: Vec<u32> = std::iter::once(pid)
                .chain(
                    self.tracker
                        .ancestors(process.key, MAX_ANCESTORS)
                        .iter()
                        .map(|k| k.pid),
                )
                .collect();
            let held = self.connections.get_mut(&process.key).into_iter().flatten();
            for h in held.filter(|h| h.cookie == settled.cookie) {
                h.settled = true;
                h.request_deadline_ns = request_deadline_ns;
                if let Some(name) = &settled.server_name {
                    answered = h
                        .endpoint
                        .ip
                        .parse()
                        .is_ok_and(|ip| self.namer.answered(ip, name, &askers, h.boot_ns));
                    h.endpoint.name_by_tls(name, answered);
                }
            }
        }
        let mut records =
            self.pending
                .release(settled.cookie, settled.server_name.as_deref(), answered);
        if records.is_empty()
            && let Some(name) = &settled.server_name
        {
            records = self.pending.late_hello(settled.cookie, name, answered);
        }
        if let Some(sent) = sent {
            records = self.prove(pid, settled.cookie, records, sent, catalog);
        } else if request_deadline_ns != 0
            && records
                .iter()
                .any(|r| matches!(r, Record::CredentialUse { .. }))
        {
            self.pending
                .await_request(settled.cookie, request_deadline_ns, records);
            return;
        }
        self.emit(records, out);
    }

    /// The records of a connection whose request carried `sent`: those it proves, else the
    /// uses it proves beyond them (copies.rs).
    fn prove(
        &mut self,
        pid: u32,
        cookie: u64,
        records: Vec<Record>,
        sent: &proof::Sent,
        catalog: &Catalog,
    ) -> Vec<Record> {
        let (mut records, any) = proof::apply(records, sent);
        if !any {
            records.extend(self.sent_uses(pid, cookie, sent, catalog));
        }
        records
    }

    /// A write into a TLS connection, before encryption: once it makes a request that carries
    /// credential values, the connection's waiting records are proven by it. A request that
    /// carries none leaves them waiting: a client retries with credentials after a 401.
    fn on_tls_write(&mut self, payload: &Payload, catalog: &Catalog, out: &mut Vec<Record>) {
        let Some(sent) = self.tls_writes.on_write(
            payload.cookie,
            payload.seq,
            &payload.data,
            payload.boot_ns,
            catalog.secrets(),
        ) else {
            return;
        };
        log::debug!(
            "pid {} wrote a request over TLS carrying {} credential values",
            payload.pid,
            sent.prints.len()
        );
        if sent.prints.is_empty() {
            return;
        }
        if let Some(process) = self.tracker.get(payload.pid).map(|p| p.key)
            && let Some(held) = self.connections.get_mut(&process)
        {
            for h in held.iter_mut().filter(|h| h.cookie == payload.cookie) {
                h.request_deadline_ns = 0;
            }
        }
        let waiting = self.pending.request(payload.cookie);
        let records = self.prove(payload.pid, payload.cookie, waiting, &sent, catalog);
        self.emit(records, out);
    }

    /// Process `key` exited: its TLS writes are all in (the kernel reported them before its
    /// exit), so its connections still waiting for a request wait no more.
    fn no_more_requests(&mut self, key: ProcKey, out: &mut Vec<Record>) {
        let Some(held) = self.connections.get_mut(&key) else {
            return;
        };
        let mut records = Vec::new();
        for h in held.iter_mut().filter(|h| h.request_deadline_ns != 0) {
            h.request_deadline_ns = 0;
            records.extend(self.pending.request(h.cookie));
        }
        self.emit(records, out);
    }

    /// A credential read: its access record, its uses of connections the reader already
    /// holds, and a read remembered for the connections to come.
    fn record_read(
        &mut self,
        reader: &Process,
        credential: Arc<CredentialRef>,
        process_ref: Arc<ProcessRef>,
        access: Access,
        out: &mut Vec<Record>,
    ) {
        let boot_ns = access.boot_ns;
        out.push(Record::CredentialAccess {
            time: self.clock.at(boot_ns),
            credential: credential.clone(),
            process: process_ref.clone(),
            hook: access.hook,
            enforcement: access.enforcement,
            enforcement_rule: access.enforcement_rule,
        });
        let read = Read {
            reader: reader.key,
            ancestors: self.tracker.ancestors(reader.key, MAX_ANCESTORS),
            sessionid: reader.sessionid,
            agent: reader.attribution.agent.clone(),
            credential,
            process: process_ref,
        };
        let time = self.clock.at(boot_ns);
        let mut now = Vec::new();
        for held in self.connections.get(&reader.key).into_iter().flatten() {
            let record = read.use_by(time, &read.process, &held.endpoint, Via::HeldConnection);
            if held.awaits_name(boot_ns) {
                // Goes out with its connection, once that is named.
                self.pending.park(held.cookie, held.boot_ns, vec![record]);
            } else if held.awaits_request(boot_ns) {
                self.pending
                    .await_request(held.cookie, held.request_deadline_ns, vec![record]);
            } else {
                now.push(record);
            }
        }
        self.emit(now, out);
        self.reads.push(read);
    }

    fn on_connect(&mut self, c: &Connect, secrets: &Secrets, out: &mut Vec<Record>) {
        let process = self.tracker.get_or_learn(c.pid, &c.comm, c.uid).clone();
        let ancestors = self.tracker.ancestors(process.key, MAX_ANCESTORS);
        let askers: Vec<u32> = std::iter::once(c.pid)
            .chain(ancestors.iter().map(|k| k.pid))
            .collect();
        let host = self.namer.lookup(c.ip, &askers, c.boot_ns);
        let endpoint = EndpointRef {
            ip: c.ip.to_string(),
            port: c.port,
            protocol: c.protocol,
            host_source: host.is_some().then_some(HostSource::Dns),
            host_verified: host.is_some(),
            host: host.map(|h| h.to_string()),
            host_claimed: None,
            enforcement: c.enforcement,
            enforcement_rule: c.enforcement_rule,
        };
        // Asking a DNS server for a name is not acting with a credential: such a connection is
        // reported, and is the use of nothing, now or when a credential is read later.
        let lookup = c.port == DNS_PORT;
        let connection = Held {
            cookie: c.cookie,
            endpoint: endpoint.clone(),
            boot_ns: c.boot_ns,
            settled: false,
            request_deadline_ns: 0,
        };
        // A refused connect sends nothing: its records go out at once.
        let awaits_name =
            connection.awaits_name(c.boot_ns) && c.enforcement != Some(Enforced::Denied);
        if !lookup {
            let held = self.connections.entry(process.key).or_default();
            if held.len() >= CONNECTIONS_PER_PROCESS {
                held.pop_front();
                self.connections_evicted += 1;
            }
            held.push_back(connection);
        }

        let connector = Connector {
            key: process.key,
            ancestors: &ancestors,
            sessionid: process.sessionid,
            agent: process.attribution.agent.as_ref(),
        };
        let used = if lookup {
            Vec::new()
        } else {
            self.reads.used_by(&connector, &endpoint)
        };
        let holds_credential = self.reads.has_reads_by(process.key);
        // Most connects on a host are by processes that hold no credential: the process record
        // (argv redaction included) is made only for those that do.
        if used.is_empty() && !holds_credential {
            return;
        }
        let process_ref = self.process_ref(&process, secrets, false);
        let time = self.clock.at(c.boot_ns);
        let uses: Vec<Record> = used
            .into_iter()
            .map(|(seq, via)| {
                self.reads
                    .get(seq)
                    .use_by(time, &process_ref, &endpoint, via)
            })
            .collect();
        let mut records = vec![Record::Connection {
            time,
            process: process_ref,
            endpoint,
        }];
        records.extend(uses);
        if awaits_name {
            self.pending.park(c.cookie, c.boot_ns, records);
        } else {
            self.emit(records, out);
        }
    }

    /// Writes records out, each use once per (user, credential, endpoint and its name). Uses
    /// are told apart only here, once connections waiting for their name have it.
    fn emit(&mut self, records: Vec<Record>, out: &mut Vec<Record>) {
        for record in records {
            if let Record::CredentialUse {
                credential,
                process,
                endpoint,
                ..
            } = &record
            {
                let key = (
                    process.pid,
                    credential.id.clone(),
                    endpoint.ip.clone(),
                    endpoint.port,
                    endpoint.protocol,
                    endpoint.host.clone(),
                    endpoint.host_claimed.clone(),
                );
                if self.uses.len() >= MAX_USES && !self.uses.contains(&key) {
                    self.uses_evicted += self.uses.len() as u64;
                    self.uses.clear();
                }
                if !self.uses.insert(key) {
                    continue;
                }
            }
            out.push(record);
        }
    }

    /// Forgets exited processes past their time, and what only they held.
    pub fn sweep(&mut self, now_boot_ns: u64) {
        self.namer.sweep(now_boot_ns);
        self.tls_writes.sweep(now_boot_ns);
        let gone: HashSet<ProcKey> = self.tracker.sweep(now_boot_ns).into_iter().collect();
        if gone.is_empty() {
            return;
        }
        self.connections.retain(|k, _| !gone.contains(k));
        self.process_refs.retain(|k, _| !gone.contains(k));
        self.accessed.retain(|(k, _)| !gone.contains(k));
        // A read stays while its reader or one of its ancestors can still connect.
        let tracker = &self.tracker;
        self.reads.retain(|r| {
            std::iter::once(&r.reader)
                .chain(&r.ancestors)
                .any(|k| tracker.get_key(*k).is_some())
        });
        self.uses.retain(|(pid, ..)| tracker.get(*pid).is_some());
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod naming_tests;
