//! `out-of-scope-use`: the process that read a credential connected outside its scope, and
//! outside the scope of every other credential it read: a process holding a netrc for one host
//! and a git token for another that talks to both has used each where it belongs. Also when
//! the connection's TLS server name claims another host than the one DNS gave its address for
//! (`curl --resolve api.github.com:443:EVIL`): the scope was judged by the resolved name.
//!
//! A proven use (the credential seen in the request) outside the credential's scope is
//! reported whatever else the process holds, and is critical: the request says which
//! credential went there.
use super::rule::{Evidence, Rule, Use, endpoint_name, finding};
use crate::{
    policy::Verdict,
    record::{Finding, Proof},
    vocab::{HostSource, RuleId, Severity},
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
            && (u.proof == Proof::Sent || !evidence.holds_one_for(u.process.pid, u.endpoint))
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
        let mut found_one = finding(
            self.id(),
            summary,
            credential,
            process,
            Some(u.endpoint),
            evidence.of_use(credential, u.reader, u.record),
        );
        if u.proof == Proof::Sent {
            found_one.severity = Severity::Critical;
        }
        found.push(found_one);
    }
}
