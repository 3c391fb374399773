//! `identity-mesh`: one agent context acts with two or more identities. Reported when a second
//! (third, ...) identity is first used, with how many the context has used. Each finding stays
//! small however many identities there are: it lists at most `LISTED` of them with their
//! endpoints, and cites at most `EVIDENCE` records (the first use of earlier identities, then
//! the new one's), so a context with n identities makes n findings, not n² records.
use std::collections::BTreeMap;

use foldhash::HashMap;

use super::rule::{Evidence, Rule, Use, endpoint_name, finding};
use crate::{
    record::{Finding, Record},
    vocab::{AgentRef, RuleId},
};

/// Uses remembered per identity, for the endpoints a finding lists.
const MESH_EVIDENCE: usize = 4;
/// Identities a finding lists by name.
const LISTED: usize = 8;
/// Records a finding cites.
const EVIDENCE: usize = 8;
/// Agent contexts remembered. Past this, the memory is cleared at the next sweep (said in the
/// log and counted in `stats`): a finding may then be reported again.
const MAX_TRACKED: usize = 8192;

#[derive(Default)]
pub struct IdentityMesh {
    /// Per (agent, context), the uses of each identity.
    meshes: HashMap<(AgentRef, String), BTreeMap<String, Vec<Record>>>,
}

impl Rule for IdentityMesh {
    fn id(&self) -> RuleId {
        RuleId::IdentityMesh
    }

    fn on_use(&mut self, u: &Use, _: &dyn Evidence, found: &mut Vec<Finding>) {
        let (credential, process) = (u.credential, u.process);
        let Some(agent) = process.agent.clone().filter(|_| u.counts) else {
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
            uses.push(u.record.clone());
        }
        if !new_identity || identities.len() < 2 {
            return;
        }
        let mut listed: Vec<String> = identities
            .iter()
            .take(LISTED)
            .map(|(identity, uses)| {
                let endpoints: Vec<String> = uses.iter().filter_map(endpoint_of).collect();
                format!("{identity} -> {}", endpoints.join(", "))
            })
            .collect();
        if identities.len() > LISTED {
            listed.push(format!("and {} more", identities.len() - LISTED));
        }
        let this_identity = credential.identity();
        let mut evidence: Vec<Record> = identities
            .iter()
            .filter(|(identity, _)| identity.as_str() != this_identity)
            .filter_map(|(_, uses)| uses.first().cloned())
            .take(EVIDENCE - 1)
            .collect();
        evidence.push(u.record.clone());
        evidence.sort_by_key(Record::time); // oldest first, as every finding's evidence
        found.push(finding(
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
            Some(u.endpoint),
            evidence,
        ));
    }

    fn sweep(&mut self) -> u64 {
        if self.meshes.len() <= MAX_TRACKED {
            return 0;
        }
        let forgotten = self.meshes.len() as u64;
        log::warn!("forgetting the identities of {forgotten} agent contexts");
        self.meshes.clear();
        forgotten
    }
}

/// The endpoint of a use record, for the summary.
fn endpoint_of(record: &Record) -> Option<String> {
    match record {
        Record::CredentialUse { endpoint, .. } => Some(endpoint_name(endpoint)),
        _ => None,
    }
}
