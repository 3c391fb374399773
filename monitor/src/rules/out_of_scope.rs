//! `out-of-scope-use`: the process that read a credential connected outside its scope, and
//! outside the scope of every other credential it read: a process holding a netrc for one host
//! and a git token for another that talks to both has used each where it belongs. Also when
//! the connection's TLS server name claims another host than the one DNS gave its address for
//! (`curl --resolve api.github.com:443:EVIL`): the scope was judged by the resolved name.
use super::rule::{Evidence, Rule, Use, endpoint_name, finding};
use crate::{
    policy::Verdict,
    record::Finding,
    vocab::{HostSource, RuleId},
};

pub struct OutOfScope;

impl Rule for OutOfScope {
    fn id(&self) -> RuleId {
        RuleId::OutOfScopeUse
    }

    fn on_use(&mut self, u: &Use, evidence: &dyn Evidence, found: &mut Vec<Finding>) {
        if !u.via.by_reader() {
            return;
        }
        let (credential, process) = (u.credential, u.process);
        let summary = if let Some(claimed) = &u.endpoint.host_claimed {
            format!(
                "{} (pid {}) read {} credential {} and connected to {}, whose TLS server name \
                 claims {claimed}",
                process.comm,
                process.pid,
                credential.kind,
                credential.path,
                endpoint_name(u.endpoint)
            )
        } else if u.verdict == Verdict::Outside
            && !evidence.holds_one_for(u.process.pid, u.endpoint)
        {
            let claimed_only = if u.endpoint.host_source == Some(HostSource::TlsSni) {
                " (a name only its TLS hello claims: no DNS answer named the address)"
            } else {
                ""
            };
            format!(
                "{} (pid {}) read {} credential {} and connected to {}{claimed_only}, outside its \
                 scope",
                process.comm,
                process.pid,
                credential.kind,
                credential.path,
                endpoint_name(u.endpoint)
            )
        } else {
            return;
        };
        found.push(finding(
            self.id(),
            summary,
            credential,
            process,
            Some(u.endpoint),
            evidence.of_use(credential, u.reader, u.record),
        ));
    }
}
