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
    /// Accesses forgotten to stay within `MAX_ACCESSES`.
    pub evicted: u64,
}

impl Accesses {
    pub fn remember(&mut self, credential: &CredentialRef, process: &ProcessRef, record: &Record) {
        let key = (credential.id.clone(), process.pid);
        if self.newest.insert(key.clone(), record.clone()).is_none() {
            self.order.push_back(key);
            if self.order.len() > MAX_ACCESSES
                && let Some(old) = self.order.pop_front()
            {
                self.newest.remove(&old);
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

    /// A scan of every remembered access: asked only for a use outside its credential's scope,
    /// which is rare, so no index is kept for it (an index per process cost 2 MiB with 10,000
    /// live readers).
    fn holds_one_for(&self, pid: u32, endpoint: &EndpointRef) -> bool {
        self.newest.iter().any(|((_, reader), read)| {
            *reader == pid
                && matches!(read, Record::CredentialAccess { credential, .. }
                    if endpoint.verdict(&credential.scope) == Verdict::Inside)
        })
    }
}
