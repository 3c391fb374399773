//! Proof of use for a request that no waiting record was proven by: the credentials it carried
//! that its process's lineage read (a credential helper's read after the connect, handed up)
//! are proven uses as the read says; a known credential its process never read through a
//! watched path (a copy in /tmp, a pipe) is a proven use `via: untracked-copy`. Known are the
//! catalog's file and tool credentials, and the secret variables seen at exec, remembered here
//! by fingerprint.
use std::sync::Arc;

use super::{Correlator, MAX_ANCESTORS, reads::Connector};
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

    /// The proven uses of the request `sent` on connection `cookie` of `pid`: the reads of its
    /// lineage it carried, then copies. A request from a process whose TLS writes keytrail
    /// reads comes after its connection was named, so a read made in between (git's credential
    /// helper, asked after a 401) is found here rather than among the waiting records.
    pub(super) fn sent_uses(
        &mut self,
        pid: u32,
        cookie: u64,
        sent: &proof::Sent,
        catalog: &Catalog,
    ) -> Vec<Record> {
        let mut credentials: Vec<Arc<CredentialRef>> = sent
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
        credentials.dedup_by(|a, b| a.id == b.id);
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
        let time = self.clock.at(endpoint.1);
        let ancestors = self.tracker.ancestors(process.key, MAX_ANCESTORS);
        let connector = Connector {
            key: process.key,
            ancestors: &ancestors,
            sessionid: process.sessionid,
            agent: process.attribution.agent.as_ref(),
        };
        let read_uses: Vec<Record> = self
            .reads
            .used_by(&connector, &endpoint.0)
            .into_iter()
            .map(|(seq, via)| {
                self.reads
                    .get(seq)
                    .use_by(time, &process_ref, &endpoint.0, via)
            })
            .collect();
        let (mut records, _) = proof::apply(read_uses, sent);
        records.retain(|r| {
            matches!(
                r,
                Record::CredentialUse {
                    proof: Proof::Sent,
                    ..
                }
            )
        });
        credentials.retain(|c| {
            !records.iter().any(
                |r| matches!(r, Record::CredentialUse { credential, .. } if credential.id == c.id),
            )
        });
        records.extend(
            credentials
                .into_iter()
                .map(|credential| Record::CredentialUse {
                    time,
                    credential,
                    process: process_ref.clone(),
                    endpoint: endpoint.0.clone(),
                    via: Via::UntrackedCopy,
                    reader: process_ref.clone(),
                    proof: Proof::Sent,
                    request: Some(sent.request.clone()),
                }),
        );
        records
    }
}
