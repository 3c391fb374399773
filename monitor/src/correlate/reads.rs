//! The credential reads remembered for the connections to come, indexed by who may use them. A
//! connect looks up the reads of its own process, of its ancestors, of its descendants and of
//! its agent, instead of walking every read: with thousands remembered, the walk was the
//! daemon's largest cost in a storm of short-lived readers.
use std::{collections::VecDeque, sync::Arc};

use foldhash::HashMap;

use crate::{
    policy::Verdict,
    process::ProcKey,
    record::{CredentialRef, EndpointRef, ProcessRef, Proof, Record, Via},
    vocab::{AgentRef, Timestamp},
};

/// Credential reads remembered in all, oldest forgotten first.
const MAX_READS: usize = 8192;

pub(super) struct Read {
    pub reader: ProcKey,
    /// The reader's ancestors when it read, nearest first.
    pub ancestors: Vec<ProcKey>,
    pub sessionid: Option<u32>,
    pub agent: Option<AgentRef>,
    pub credential: Arc<CredentialRef>,
    pub process: Arc<ProcessRef>,
}

impl Read {
    /// The use of this read's credential by `user` against `endpoint`.
    pub fn use_by(
        &self,
        time: Timestamp,
        user: &Arc<ProcessRef>,
        endpoint: &EndpointRef,
        via: Via,
    ) -> Record {
        // A use of an MCP configuration is the use of the tool server's secret whose scope
        // holds the endpoint (the agent that read the file acted with that tool's token).
        let credential = self
            .credential
            .parts
            .iter()
            .find(|part| endpoint.verdict(&part.scope) == Verdict::Inside)
            .unwrap_or(&self.credential);
        Record::CredentialUse {
            time,
            credential: credential.clone(),
            process: user.clone(),
            endpoint: endpoint.clone(),
            via,
            reader: self.process.clone(),
            proof: Proof::Inferred,
            request: None,
        }
    }
}

/// The process that connects, as far as matching reads goes.
pub(super) struct Connector<'a> {
    pub key: ProcKey,
    /// Nearest first.
    pub ancestors: &'a [ProcKey],
    pub sessionid: Option<u32>,
    pub agent: Option<&'a AgentRef>,
}

/// Reads by sequence number (never reused), with indexes from each key to its reads' numbers,
/// oldest first.
#[derive(Default)]
pub(super) struct ReadLog {
    reads: VecDeque<Read>,
    /// The number of `reads[0]`.
    first: u64,
    by_reader: HashMap<ProcKey, VecDeque<u64>>,
    /// Reads by every ancestor of their reader.
    by_ancestor: HashMap<ProcKey, VecDeque<u64>>,
    by_agent: HashMap<AgentRef, VecDeque<u64>>,
    /// Reads forgotten to stay within `MAX_READS` while a process of their lineage lived.
    pub evicted: u64,
}

impl ReadLog {
    pub fn push(&mut self, read: Read) {
        if self.reads.len() >= MAX_READS {
            self.pop_oldest();
            self.evicted += 1;
        }
        let seq = self.first + self.reads.len() as u64;
        self.by_reader
            .entry(read.reader)
            .or_default()
            .push_back(seq);
        for ancestor in &read.ancestors {
            self.by_ancestor
                .entry(*ancestor)
                .or_default()
                .push_back(seq);
        }
        if let Some(agent) = &read.agent {
            self.by_agent
                .entry(agent.clone())
                .or_default()
                .push_back(seq);
        }
        self.reads.push_back(read);
    }

    fn pop_oldest(&mut self) {
        let Some(read) = self.reads.pop_front() else {
            return;
        };
        let seq = self.first;
        self.first += 1;
        // The oldest read is first in every index that holds it.
        unindex(&mut self.by_reader, &read.reader, seq);
        for ancestor in &read.ancestors {
            unindex(&mut self.by_ancestor, ancestor, seq);
        }
        if let Some(agent) = &read.agent {
            unindex(&mut self.by_agent, agent, seq);
        }
    }

    pub fn get(&self, seq: u64) -> &Read {
        &self.reads[(seq - self.first) as usize]
    }

    pub fn has_reads_by(&self, key: ProcKey) -> bool {
        self.by_reader.contains_key(&key)
    }

    /// The reads `connector` uses by connecting to `endpoint`, oldest first, and how: its own,
    /// its ancestors' (inherited), its descendants' in its session (handed up), and its agent's
    /// when the endpoint is in the credential's scope.
    pub fn used_by(&self, connector: &Connector, endpoint: &EndpointRef) -> Vec<(u64, Via)> {
        let mut candidates: Vec<u64> = Vec::new();
        let mut add = |seqs: Option<&VecDeque<u64>>| candidates.extend(seqs.into_iter().flatten());
        add(self.by_reader.get(&connector.key));
        for ancestor in connector.ancestors {
            add(self.by_reader.get(ancestor));
        }
        add(self.by_ancestor.get(&connector.key));
        if let Some(agent) = connector.agent {
            add(self.by_agent.get(agent));
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .filter_map(|seq| {
                let read = self.get(seq);
                let via = if read.reader == connector.key {
                    Via::Read
                } else if connector.ancestors.contains(&read.reader) {
                    Via::Ancestor
                } else if read.ancestors.contains(&connector.key)
                    && read.sessionid == connector.sessionid
                {
                    Via::Descendant
                } else if connector.agent.is_some()
                    && read.agent.as_ref() == connector.agent
                    && endpoint.verdict(&read.credential.scope) == Verdict::Inside
                {
                    Via::Agent
                } else {
                    return None;
                };
                Some((seq, via))
            })
            .collect()
    }

    /// Keeps the reads `keep` says to, and indexes them afresh.
    pub fn retain(&mut self, keep: impl Fn(&Read) -> bool) {
        let reads = std::mem::take(&mut self.reads);
        let first = self.first + reads.len() as u64;
        *self = Self {
            first,
            evicted: self.evicted,
            ..Self::default()
        };
        for read in reads.into_iter().filter(|r| keep(r)) {
            self.push(read);
        }
    }
}

fn unindex<K: std::hash::Hash + Eq>(index: &mut HashMap<K, VecDeque<u64>>, key: &K, seq: u64) {
    if let Some(seqs) = index.get_mut(key) {
        if seqs.front() == Some(&seq) {
            seqs.pop_front();
        }
        if seqs.is_empty() {
            index.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Protocol;

    fn key(pid: u32) -> ProcKey {
        ProcKey { pid, start: 1 }
    }

    fn read(reader: u32, ancestors: &[u32]) -> Read {
        Read {
            reader: key(reader),
            ancestors: ancestors.iter().map(|p| key(*p)).collect(),
            sessionid: Some(1),
            agent: None,
            credential: serde_json::from_value(
                serde_json::json!({"id": "c", "kind": "generic", "path": "/c"}),
            )
            .unwrap(),
            process: serde_json::from_value(serde_json::json!({"pid": reader, "context": "x"}))
                .unwrap(),
        }
    }

    fn endpoint() -> EndpointRef {
        EndpointRef {
            ip: "10.0.0.1".into(),
            port: 443,
            protocol: Protocol::Tcp,
            host: None,
            host_source: None,
            host_verified: false,
            host_claimed: None,
            enforcement: None,
            enforcement_rule: None,
        }
    }

    fn connector(pid: u32, ancestors: &[ProcKey]) -> Connector<'_> {
        Connector {
            key: key(pid),
            ancestors,
            sessionid: Some(1),
            agent: None,
        }
    }

    #[test]
    fn a_connect_finds_its_own_its_ancestors_and_its_descendants_reads_in_order() {
        let mut log = ReadLog::default();
        log.push(read(10, &[1])); // the parent
        log.push(read(20, &[])); // unrelated
        log.push(read(30, &[11, 10, 1])); // a grandchild
        log.push(read(11, &[10, 1])); // the connector itself
        let ancestors = [key(10), key(1)];
        let used = log.used_by(&connector(11, &ancestors), &endpoint());
        assert_eq!(
            used,
            vec![(0, Via::Ancestor), (2, Via::Descendant), (3, Via::Read)]
        );
        assert!(log.has_reads_by(key(11)) && !log.has_reads_by(key(12)));
    }

    #[test]
    fn the_oldest_reads_are_forgotten_from_every_index() {
        let mut log = ReadLog::default();
        for i in 0..MAX_READS as u32 + 100 {
            log.push(read(1000 + i % 3, &[1]));
        }
        let used = log.used_by(&connector(1, &[]), &endpoint());
        assert_eq!(used.len(), MAX_READS, "descendants' reads still held");
        assert_eq!(used[0], (100, Via::Descendant));
        log.retain(|r| r.reader == key(1000));
        let used = log.used_by(&connector(1000, &[]), &endpoint());
        assert!(!used.is_empty() && used.iter().all(|(_, via)| *via == Via::Read));
        assert_eq!(log.used_by(&connector(1001, &[]), &endpoint()), vec![]);
        assert!(!log.has_reads_by(key(1001)));
    }
}
