//! Proof of use beyond what a process read: a request that carries a known credential its
//! process never read through a watched path (a copy in /tmp, a pipe) is a proven use
//! `via: untracked-copy`. Known are the catalog's file and tool credentials, and the secret
//! variables seen at exec, remembered here by fingerprint.
use std::sync::Arc;

use super::Correlator;
use crate::{
    catalog::Catalog,
    fingerprint::Fingerprint,
    proof,
    record::{CredentialRef, Proof, Record, Via},
};

/// Variable credentials remembered for proof of use.
const MAX_ENV_CREDENTIALS: usize = 4096;

impl Correlator {
    /// Remembers a variable's credential by its secret's fingerprint (the first seen keeps it).
    pub(super) fn remember_env_credential(
        &mut self,
        print: Fingerprint,
        credential: &Arc<CredentialRef>,
    ) {
        if self.env_credentials.contains_key(&print) {
            return;
        }
        if self.env_order.len() >= MAX_ENV_CREDENTIALS
            && let Some(oldest) = self.env_order.pop_front()
        {
            self.env_credentials.remove(&oldest);
        }
        self.env_credentials.insert(print, Arc::clone(credential));
        self.env_order.push_back(print);
    }

    /// A request that carried a known credential its process holds by no read keytrail saw:
    /// a copy. Each such credential is a proven use `via: untracked-copy` (the process is its
    /// own reader: who made the copy is not known).
    pub(super) fn untracked_copies(
        &mut self,
        pid: u32,
        cookie: u64,
        sent: &proof::Sent,
        catalog: &Catalog,
    ) -> Vec<Record> {
        let credentials: Vec<Arc<CredentialRef>> = sent
            .prints
            .iter()
            .filter_map(|print| {
                catalog
                    .credential_by_print(*print)
                    .or_else(|| self.env_credentials.get(print))
            })
            .cloned()
            .collect();
        if credentials.is_empty() {
            return Vec::new();
        }
        let Some(process) = self.tracker.get(pid).cloned() else {
            return Vec::new();
        };
        let Some(endpoint) = self
            .connections
            .get(&process.key)
            .into_iter()
            .flatten()
            .find(|h| h.cookie == cookie)
            .map(|h| (h.endpoint.clone(), h.boot_ns))
        else {
            return Vec::new();
        };
        let process_ref = self.process_ref(&process, catalog.secrets(), false);
        credentials
            .into_iter()
            .map(|credential| Record::CredentialUse {
                time: self.clock.at(endpoint.1),
                credential,
                process: process_ref.clone(),
                endpoint: endpoint.0.clone(),
                via: Via::UntrackedCopy,
                reader: process_ref.clone(),
                proof: Proof::Sent,
                request: Some(sent.request.clone()),
            })
            .collect()
    }
}
