//! `standing-credential`: an agent uses a credential that lives until it is revoked (an AWS
//! access key `AKIA...`, a GitHub personal token, an API key, an OAuth file with a refresh
//! token) where a short-lived, per-task one would do. The guidance on agent identity prefers
//! credentials minted for the task and expiring with it; this says where that is not so. The
//! lifetime is the credential's (`credential.lifetime`, from its secrets' shapes); a credential
//! whose shape says nothing is not reported.
use super::rule::{Evidence, Rule, Use, endpoint_name, finding};
use crate::{
    record::Finding,
    vocab::{Lifetime, RuleId},
};

pub struct StandingCredential;

impl Rule for StandingCredential {
    fn id(&self) -> RuleId {
        RuleId::StandingCredential
    }

    fn on_use(&mut self, u: &Use, evidence: &dyn Evidence, found: &mut Vec<Finding>) {
        let (credential, process) = (u.credential, u.process);
        let Some(agent) = &process.agent else {
            return;
        };
        if !u.counts || credential.lifetime != Some(Lifetime::Long) {
            return;
        }
        found.push(finding(
            self.id(),
            format!(
                "agent {} (pid {}) used long-lived {} credential {} against {} (via {} (pid {})): a short-lived, per-task credential would expire with the task",
                agent.name,
                agent.pid,
                credential.kind,
                credential.path,
                endpoint_name(u.endpoint),
                process.comm,
                process.pid
            ),
            credential,
            process,
            Some(u.endpoint),
            evidence.of_use(credential, u.reader, u.record),
        ));
    }
}
