//! The accesses remembered as evidence: the newest access of each (credential, process), so a
//! finding about a use can cite the read that made it possible. Bounded: the oldest is
//! forgotten first, and each forgotten one is counted in `stats`.
use std::collections::VecDeque;

use foldhash::HashMap;

use super::rule::Evidence;
use crate::{
    policy::Verdict,
    record::{CredentialRef, EndpointRef, ProcessRef, Record},
};

/// Accesses remembered, oldest forgotten first.
const MAX_ACCESSES: usize = 16_384;

#[derive(Default)]
pub struct Accesses {
    newest: HashMap<(String, u32), Record>,
    order: VecDeque<(String, u32)>,
    /// The credential ids each process is remembered to have read.
    by_pid: HashMap<u32, Vec<String>>,
    /// Accesses forgotten to stay within `MAX_ACCESSES`.
    pub evicted: u64,
}

impl Accesses {
    pub fn remember(&mut self, credential: &CredentialRef, process: &ProcessRef, record: &Record) {
        let key = (credential.id.clone(), process.pid);
        if self.newest.insert(key.clone(), record.clone()).is_none() {
            self.by_pid
                .entry(process.pid)
                .or_default()
                .push(credential.id.clone());
            self.order.push_back(key);
            if self.order.len() > MAX_ACCESSES
                && let Some((id, pid)) = self.order.pop_front()
            {
                self.newest.remove(&(id.clone(), pid));
                if let Some(ids) = self.by_pid.get_mut(&pid) {
                    ids.retain(|i| *i != id);
                    if ids.is_empty() {
                        self.by_pid.remove(&pid);
                    }
                }
                self.evicted += 1;
            }
        }
    }
}

impl Evidence for Accesses {
    /// Made only for a finding: most uses find nothing.
    fn of_use(
        &self,
        credential: &CredentialRef,
        reader: &ProcessRef,
        used: &Record,
    ) -> Vec<Record> {
        let access = self.newest.get(&(credential.id.clone(), reader.pid));
        access.into_iter().chain([used]).cloned().collect()
    }

    fn holds_one_for(&self, pid: u32, endpoint: &EndpointRef) -> bool {
        self.by_pid.get(&pid).into_iter().flatten().any(|id| {
            let read = self.newest.get(&(id.clone(), pid));
            matches!(read, Some(Record::CredentialAccess { credential, .. })
                if endpoint.verdict(&credential.scope) == Verdict::Inside)
        })
    }
}
