//! The pure stages after decode, as one interface: kernel events become records (the
//! correlator, with its process tracker and endpoint naming), records become findings (the
//! rules). `run` feeds it decoded kernel events; `replay` feeds it recorded records, which enter
//! after correlation. Both take their `stats` from here.
mod flood;

use std::sync::Arc;

use crate::{
    catalog::Catalog,
    clock::Clock,
    correlate::Correlator,
    decode::KernelEvent,
    names::{NameCounts, Resolvers},
    policy::Policy,
    process::{ProcKey, ProcessTracker},
    record::{Evictions, Finding, Record},
    redact::Secrets,
    rules::Engine,
    vocab::{RuleId, Timestamp},
};

/// What the stage before the pipeline saw: events in, and those lost on the way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceCounts {
    /// Kernel events read (or records replayed).
    pub events: u64,
    /// Events lost because a ring buffer was full.
    pub ringbuf_full: u64,
    /// Of those, from the ring of credential accesses and connects.
    pub critical_full: u64,
    /// Accesses and connects a user's budget sent to the bulk ring.
    pub critical_demoted: u64,
    /// Events whose bytes did not decode.
    pub undecodable: u64,
    /// Packets on watched sockets the kernel could not parse.
    pub packets_unparsed: u64,
    /// DNS answers over UDP the kernel did not report (none asked for, or another sender).
    pub dns_unsolicited: u64,
    /// Socket marks the kernel failed to insert.
    pub sockets_unmarked: u64,
    /// Secrets from variables the catalog forgot to stay bounded.
    pub secrets_forgotten: u64,
    /// Runs of the kernel programs the kernel skipped (the program busy on that CPU).
    pub missed_runs: u64,
}

pub struct Pipeline {
    correlator: Correlator,
    engine: Engine,
    /// Who made the events of the current stats interval (for `monitor-blind`).
    producers: flood::Producers,
}

impl Pipeline {
    /// DNS answers name endpoints when they come from `resolvers`.
    pub fn new(
        tracker: ProcessTracker,
        clock: Clock,
        policy: Arc<Policy>,
        resolvers: Resolvers,
    ) -> Self {
        Self {
            correlator: Correlator::new(tracker, clock, Arc::clone(&policy), resolvers),
            engine: Engine::new(policy),
            producers: flood::Producers::default(),
        }
    }

    /// Policy was reloaded (SIGHUP): what is remembered (processes, reads, connections, fold
    /// windows, rule memory) stays; what comes next is judged by `policy`.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.engine.set_policy(&policy);
        self.correlator.set_policy(policy);
    }

    /// Agents already running at start: their working directories are workspaces.
    pub fn seed_workspaces(&mut self, catalog: &mut Catalog) {
        self.correlator.seed_workspaces(catalog);
    }

    /// Lets go of the workspaces of agent processes whose exit was lost.
    pub fn sweep_workspaces(&mut self, catalog: &mut Catalog) {
        self.correlator.sweep_workspaces(catalog);
    }

    /// For records that were correlated already (`replay`): the rules alone have work to do.
    pub fn for_records(policy: Arc<Policy>) -> Self {
        Self::new(
            ProcessTracker::new(100, None),
            Clock::fixed(0),
            policy,
            Resolvers::only(Vec::new()),
        )
    }

    /// One kernel event: the records it makes, and the findings they prove, go to `out`.
    pub fn handle(&mut self, event: &KernelEvent, catalog: &mut Catalog, out: &mut Vec<Record>) {
        let first = out.len();
        self.producers.note(event);
        self.correlator.handle(event, catalog, out);
        self.find(first, out);
    }

    /// Called at each stats interval with the kernel events `lost` in it: when some were, a
    /// `monitor-blind` finding naming the process that made the most events. Starts a new
    /// interval either way.
    pub fn blind(&mut self, lost: u64, time: Timestamp, secrets: &Secrets, out: &mut Vec<Record>) {
        let top = self.producers.top();
        self.producers.clear();
        if lost == 0 {
            return;
        }
        let Some(process) = top.and_then(|pid| self.correlator.describe(pid, secrets)) else {
            return;
        };
        let summary = format!(
            "{lost} kernel events lost: a ring buffer was full; most events came from {} (pid {}) \
             and its children",
            process.comm, process.pid
        );
        let finding = Finding {
            time,
            rule: RuleId::MonitorBlind,
            severity: RuleId::MonitorBlind.default_severity(),
            summary,
            user: process.originating_uid(),
            agent: process.agent.clone(),
            context: process.context.clone(),
            credential: None,
            process,
            endpoint: None,
            evidence: Vec::new(),
            count: 1,
            action: Default::default(),
        };
        self.engine.report_blind(finding, out);
    }

    /// One record made elsewhere (a recorded stream): the findings it proves go to `out`.
    pub fn observe(&mut self, record: &Record, out: &mut Vec<Record>) {
        self.engine.observe(record, out);
    }

    /// Process `pid` writes into TLS connections through a hooked library (see
    /// `Correlator::writes_tls`).
    pub fn writes_tls(&mut self, pid: u32) {
        self.correlator.writes_tls(pid);
    }

    /// The processes that hold what `pid` reads, whose TLS writes are then read: `pid` and
    /// its ancestors of the same user and session (`ProcessTracker::same_user_lineage`).
    pub fn holders_by_reading(&self, pid: u32) -> Vec<ProcKey> {
        self.correlator.holders_by_reading(pid)
    }

    /// Whether the process `key` is still known (running, or exited with a descendant alive).
    pub fn tracks(&self, key: ProcKey) -> bool {
        self.correlator.tracks(key)
    }

    /// Time passing: connections that waited long enough for their name are reported.
    pub fn tick(&mut self, now_boot_ns: u64, out: &mut Vec<Record>) {
        let first = out.len();
        self.correlator.tick(now_boot_ns, out);
        self.find(first, out);
    }

    /// Forgets exited processes and closed fold windows, and keeps rule memory bounded.
    pub fn sweep(&mut self, now_boot_ns: u64, now: Timestamp) {
        self.correlator.sweep(now_boot_ns);
        self.engine.sweep(now);
    }

    /// At the end: every record still held back (connections waiting for a name, folded
    /// findings).
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        self.tick(u64::MAX, out);
        self.engine.flush(out);
    }

    /// Findings reported so far.
    pub fn findings(&self) -> u64 {
        self.engine.findings()
    }

    /// The `stats` record: what came in, what was lost, what was found and forgotten.
    /// Processes the tracker holds now.
    pub fn tracked_processes(&self) -> usize {
        self.correlator.tracked_processes()
    }

    pub fn stats(&self, time: Timestamp, source: SourceCounts) -> Record {
        let (reads, connections, uses) = self.correlator.evicted();
        let forgotten = self.engine.forgotten();
        Record::Stats {
            time,
            events: source.events,
            dropped: source.ringbuf_full + source.undecodable,
            findings: self.engine.findings(),
            ringbuf_full: source.ringbuf_full,
            critical_full: source.critical_full,
            critical_demoted: source.critical_demoted,
            undecodable: source.undecodable,
            missed_runs: source.missed_runs,
            names: NameCounts {
                packets_unparsed: source.packets_unparsed,
                dns_unsolicited: source.dns_unsolicited,
                sockets_unmarked: source.sockets_unmarked,
                ..self.correlator.name_counts()
            },
            evicted: Evictions {
                reads,
                connections,
                evidence: forgotten.accesses,
                rule_memory: forgotten.rule_memory,
                secrets: source.secrets_forgotten,
                uses,
            },
            fleet: None,
        }
    }

    /// Runs the rules over the records from `first` on and appends what they find.
    fn find(&mut self, first: usize, out: &mut Vec<Record>) {
        let mut findings = Vec::new();
        for record in &out[first..] {
            self.engine.observe(record, &mut findings);
        }
        out.append(&mut findings);
    }
}

#[cfg(test)]
mod tests;
