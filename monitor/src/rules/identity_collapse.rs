//! `identity-collapse`: one user's credential used for another originating user, or one
//! credential (identity) used on behalf of several users.
use std::collections::BTreeMap;

use foldhash::HashMap;

use super::rule::{Evidence, Rule, Use, endpoint_name, finding};
use crate::{
    record::{Finding, Record},
    vocab::RuleId,
};

/// Identities remembered. Past this, the memory is cleared at the next sweep (said in the log
/// and counted in `stats`): a finding may then be reported again.
const MAX_TRACKED: usize = 8192;

#[derive(Default)]
pub struct IdentityCollapse {
    /// Per identity, the first use for each originating user.
    users: HashMap<String, BTreeMap<u32, Record>>,
}

impl Rule for IdentityCollapse {
    fn id(&self) -> RuleId {
        RuleId::IdentityCollapse
    }

    fn on_use(&mut self, u: &Use, _: &dyn Evidence, found: &mut Vec<Finding>) {
        if !u.counts {
            return;
        }
        let (credential, process, endpoint) = (u.credential, u.process, u.endpoint);
        let user = process.originating_uid();
        if let Some(owner) = credential.owner.filter(|o| *o != user) {
            found.push(finding(
                self.id(),
                format!(
                    "{} credential {} of uid {owner} was used for uid {user} by {} (pid {}) against {}",
                    credential.kind,
                    credential.path,
                    process.comm,
                    process.pid,
                    endpoint_name(endpoint)
                ),
                credential,
                process,
                Some(endpoint),
                vec![u.record.clone()],
            ));
        }
        let by_user = self
            .users
            .entry(credential.identity().to_owned())
            .or_default();
        if by_user.contains_key(&user) {
            return;
        }
        by_user.insert(user, u.record.clone());
        if by_user.len() < 2 {
            return;
        }
        let uids: Vec<String> = by_user.keys().map(u32::to_string).collect();
        found.push(finding(
            RuleId::IdentityCollapse,
            format!(
                "{} credential {} is used on behalf of {} users (uids {})",
                credential.kind,
                credential.identity(),
                by_user.len(),
                uids.join(", ")
            ),
            credential,
            process,
            Some(endpoint),
            by_user.values().cloned().collect(),
        ));
    }

    fn sweep(&mut self) -> u64 {
        if self.users.len() <= MAX_TRACKED {
            return 0;
        }
        let forgotten = self.users.len() as u64;
        log::warn!("forgetting which users used which of {forgotten} identities");
        self.users.clear();
        forgotten
    }
}
