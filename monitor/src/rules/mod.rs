//! The rules: credential accesses and uses in, findings out (docs/records.md, `finding`). Pure and
//! fed records, so the daemon and `keytrail replay` run the very same engine.
//!
//! Which uses count: a use by the process that read the credential counts unless it is
//! outside the credential's scope (that is `out-of-scope-use`); a use by a process that did
//! not read it (inherited, handed up, handed across an agent) counts only inside its scope.
mod checks;
mod fold;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
};

use foldhash::HashMap;

use crate::{
    policy::{Policy, Verdict},
    record::{CredentialRef, EndpointRef, Finding, ProcessRef, Record},
    vocab::{AgentRef, RuleId, Timestamp},
};

/// Accesses remembered for evidence, oldest forgotten first.
const MAX_ACCESSES: usize = 16_384;
/// Uses remembered per identity as evidence of a mesh.
const MESH_EVIDENCE: usize = 4;
/// Identities and agent contexts remembered for collapse and mesh. Past this, the memory is
/// cleared at the next sweep (said in the log): a finding may then be reported again.
const MAX_TRACKED: usize = 8192;

pub struct Engine {
    policy: Arc<Policy>,
    folder: fold::Folder,
    /// The newest access of each (credential, pid), for evidence.
    accesses: HashMap<(String, u32), Record>,
    access_order: VecDeque<(String, u32)>,
    /// Per identity, the first use for each originating user.
    users: HashMap<String, BTreeMap<u32, Record>>,
    /// Per (agent, context), the uses of each identity.
    meshes: HashMap<(AgentRef, String), BTreeMap<String, Vec<Record>>>,
    reported: u64,
}

impl Engine {
    pub fn new(policy: Arc<Policy>) -> Self {
        Self {
            folder: fold::Folder::new(policy.fold_window()),
            policy,
            accesses: HashMap::default(),
            access_order: VecDeque::new(),
            users: HashMap::default(),
            meshes: HashMap::default(),
            reported: 0,
        }
    }

    /// Findings reported so far.
    pub fn findings(&self) -> u64 {
        self.reported
    }

    /// Looks at one record; findings it proves are appended to `out`.
    pub fn observe(&mut self, record: &Record, out: &mut Vec<Record>) {
        let mut found = Vec::new();
        match record {
            Record::CredentialAccess {
                credential,
                process,
                hook,
                ..
            } => {
                self.remember_access(credential, process, record);
                checks::unexpected_reader(record, credential, process, *hook, &mut found);
                checks::owned_elsewhere(record, credential, process, None, &mut found);
            }
            Record::CredentialUse {
                credential,
                process,
                endpoint,
                via,
                reader,
                ..
            } => {
                let verdict = endpoint.verdict(&credential.scope);
                let counts = if via.by_reader() {
                    verdict != Verdict::Outside
                } else {
                    verdict == Verdict::Inside
                };
                if via.by_reader() && verdict == Verdict::Outside {
                    let evidence = self.evidence(credential, reader, record);
                    found.push(checks::out_of_scope(
                        credential, process, endpoint, &evidence,
                    ));
                }
                checks::owned_elsewhere(record, credential, process, Some(endpoint), &mut found);
                if !counts {
                    self.report(found, out);
                    return;
                }
                if !via.by_reader() && reader.context != process.context {
                    let evidence = self.evidence(credential, reader, record);
                    found.push(checks::handed_across(
                        credential, process, endpoint, reader, &evidence,
                    ));
                }
                checks::collapse(
                    &mut self.users,
                    credential,
                    process,
                    endpoint,
                    record,
                    &mut found,
                );
                self.mesh(credential, process, endpoint, record, &mut found);
            }
            _ => {}
        }
        self.report(found, out);
    }

    /// At the end of a run or replay: what folding held back.
    pub fn flush(&mut self, out: &mut Vec<Record>) {
        for f in self.folder.flush() {
            self.reported += f.count;
            out.push(Record::Finding(Box::new(f)));
        }
    }

    /// Drops state nobody will ask for again (closed fold windows), and keeps the rest bounded.
    pub fn sweep(&mut self, now: Timestamp) {
        self.folder.sweep(now);
        if self.users.len() > MAX_TRACKED {
            log::warn!(
                "forgetting which users used which of {} identities",
                self.users.len()
            );
            self.users.clear();
        }
        if self.meshes.len() > MAX_TRACKED {
            log::warn!(
                "forgetting the identities of {} agent contexts",
                self.meshes.len()
            );
            self.meshes.clear();
        }
    }

    fn report(&mut self, found: Vec<Finding>, out: &mut Vec<Record>) {
        for mut f in found {
            let Some(severity) = self.policy.severity(f.rule) else {
                continue;
            };
            f.severity = severity;
            if let Some(f) = self.folder.fold(f) {
                self.reported += 1;
                out.push(Record::Finding(Box::new(f)));
            }
        }
    }

    fn remember_access(
        &mut self,
        credential: &CredentialRef,
        process: &ProcessRef,
        record: &Record,
    ) {
        let key = (credential.id.clone(), process.pid);
        if self.accesses.insert(key.clone(), record.clone()).is_none() {
            self.access_order.push_back(key);
            if self.access_order.len() > MAX_ACCESSES
                && let Some(old) = self.access_order.pop_front()
            {
                self.accesses.remove(&old);
            }
        }
    }

    /// The records that prove a use: the reader's access, where it is remembered, and the use.
    /// Made only for a finding: most uses find nothing.
    fn evidence(
        &self,
        credential: &CredentialRef,
        reader: &ProcessRef,
        used: &Record,
    ) -> Vec<Record> {
        let access = self.accesses.get(&(credential.id.clone(), reader.pid));
        access.into_iter().chain([used]).cloned().collect()
    }

    /// `identity-mesh`: a second identity used in one agent context.
    fn mesh(
        &mut self,
        credential: &Arc<CredentialRef>,
        process: &Arc<ProcessRef>,
        endpoint: &EndpointRef,
        record: &Record,
        found: &mut Vec<Finding>,
    ) {
        let Some(agent) = process.agent.clone() else {
            return;
        };
        let identities = self
            .meshes
            .entry((agent.clone(), process.context.clone()))
            .or_default();
        let uses = identities
            .entry(credential.identity().to_owned())
            .or_default();
        let new_identity = uses.is_empty();
        if uses.len() < MESH_EVIDENCE {
            uses.push(record.clone());
        }
        if !new_identity || identities.len() < 2 {
            return;
        }
        let listed: Vec<String> = identities
            .iter()
            .map(|(identity, uses)| {
                let endpoints: Vec<String> =
                    uses.iter().filter_map(checks::endpoint_text).collect();
                format!("{identity} -> {}", endpoints.join(", "))
            })
            .collect();
        let evidence = identities.values().flatten().cloned().collect();
        found.push(checks::finding(
            RuleId::IdentityMesh,
            format!(
                "agent {} (pid {}) in context {} acts with {} identities: {}",
                agent.name,
                agent.pid,
                process.context,
                identities.len(),
                listed.join("; ")
            ),
            credential,
            process,
            Some(endpoint),
            evidence,
        ));
    }
}

#[cfg(test)]
mod tests;
