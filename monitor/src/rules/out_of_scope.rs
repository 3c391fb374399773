//! `out-of-scope-use`: the process that read a credential connected outside its scope, and
//! outside the scope of every other credential it read: a process holding a netrc for one host
//! and a git token for another that talks to both has used each where it belongs.
use super::rule::{Evidence, Rule, Use, endpoint_name, finding};
use crate::{policy::Verdict, record::Finding, vocab::RuleId};

pub struct OutOfScope;

impl Rule for OutOfScope {
    fn id(&self) -> RuleId {
        RuleId::OutOfScopeUse
    }

    fn on_use(&mut self, u: &Use, evidence: &dyn Evidence, found: &mut Vec<Finding>) {
        if !u.via.by_reader()
            || u.verdict != Verdict::Outside
            || evidence.holds_one_for(u.process.pid, u.endpoint)
        {
            return;
        }
        let (credential, process) = (u.credential, u.process);
        found.push(finding(
            self.id(),
            format!(
                "{} (pid {}) read {} credential {} and connected to {}, outside its scope",
                process.comm,
                process.pid,
                credential.kind,
                credential.path,
                endpoint_name(u.endpoint)
            ),
            credential,
            process,
            Some(u.endpoint),
            evidence.of_use(credential, u.reader, u.record),
        ));
    }
}
