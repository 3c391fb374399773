//! What every rule is: the trait, what it is shown, and the helpers that build findings. A rule
//! is one file beside this one with its own state; `Engine` shows it every access and every use
//! and reports what it finds.
use std::sync::Arc;

use crate::{
    policy::Verdict,
    record::{CredentialRef, EndpointRef, Finding, ProcessRef, Proof, Record, Via},
    vocab::{Enforced, Hook, RuleId, Severity},
};

/// A credential access, as a rule sees it.
pub struct Access<'a> {
    pub record: &'a Record,
    pub credential: &'a Arc<CredentialRef>,
    pub process: &'a Arc<ProcessRef>,
    pub hook: Hook,
    /// What read denial made of it (refused, or would have been in a dry run).
    pub enforcement: Option<Enforced>,
    /// The rule read denial refused it for.
    pub enforcement_rule: Option<RuleId>,
}

/// A credential use, as a rule sees it, with what the engine decided of it.
pub struct Use<'a> {
    pub record: &'a Record,
    pub credential: &'a Arc<CredentialRef>,
    pub process: &'a Arc<ProcessRef>,
    pub endpoint: &'a EndpointRef,
    pub via: Via,
    pub reader: &'a Arc<ProcessRef>,
    /// Where the endpoint stands with respect to the credential's scope.
    pub verdict: Verdict,
    /// Whether the credential was seen in the request (`Proof::Sent`).
    pub proof: Proof,
    /// Whether the use counts: a use by the process that read the credential counts unless it
    /// is outside the credential's scope; a use by a process that did not read it (inherited,
    /// handed up, handed across an agent) counts only inside its scope.
    pub counts: bool,
}

impl Use<'_> {
    pub fn new<'a>(
        record: &'a Record,
        credential: &'a Arc<CredentialRef>,
        process: &'a Arc<ProcessRef>,
        endpoint: &'a EndpointRef,
        via: Via,
        reader: &'a Arc<ProcessRef>,
        proof: Proof,
    ) -> Use<'a> {
        let verdict = endpoint.verdict(&credential.scope);
        let counts = if via.by_reader() {
            verdict != Verdict::Outside
        } else {
            verdict == Verdict::Inside
        };
        Use {
            record,
            credential,
            process,
            endpoint,
            via,
            reader,
            proof,
            verdict,
            counts,
        }
    }
}

/// The records a rule may cite beyond the one in hand: the newest access of each credential by
/// each process (see `evidence.rs`).
pub trait Evidence {
    /// The reader's access of the credential, where it is remembered, then `used`.
    fn of_use(&self, credential: &CredentialRef, reader: &ProcessRef, used: &Record)
    -> Vec<Record>;

    /// Whether process `pid` read a credential whose scope holds `endpoint`.
    fn holds_one_for(&self, pid: u32, endpoint: &EndpointRef) -> bool;
}

pub trait Rule {
    /// The id its findings carry (one rule may make findings of one id only).
    fn id(&self) -> RuleId;

    /// Looks at a credential access; findings go to `found`.
    fn on_access(&mut self, _access: &Access, _evidence: &dyn Evidence, _found: &mut Vec<Finding>) {
    }

    /// Looks at a credential use; findings go to `found`.
    fn on_use(&mut self, _used: &Use, _evidence: &dyn Evidence, _found: &mut Vec<Finding>) {}

    /// Keeps its memory bounded; returns how many entries it forgot (counted in `stats`).
    fn sweep(&mut self) -> u64 {
        0
    }
}

/// A finding of `rule` about `process` and `credential`, timed by its newest evidence. Its
/// severity is set from policy when it is reported.
pub fn finding(
    rule: RuleId,
    summary: String,
    credential: &Arc<CredentialRef>,
    process: &Arc<ProcessRef>,
    endpoint: Option<&EndpointRef>,
    evidence: Vec<Record>,
) -> Finding {
    let time = evidence.last().map(Record::time).unwrap_or_default();
    Finding {
        time,
        rule,
        // The floor: the engine raises it to what policy gives the rule.
        severity: Severity::Low,
        summary,
        user: process.originating_uid(),
        agent: process.agent.clone(),
        context: process.context.clone(),
        credential: Some(credential.clone()),
        process: process.clone(),
        endpoint: endpoint.cloned(),
        evidence,
        count: 1,
        action: endpoint.and_then(|e| e.enforcement).into(),
    }
}

/// An endpoint for summaries: its name and address where it has a name.
pub fn endpoint_name(e: &EndpointRef) -> String {
    match &e.host {
        Some(host) => format!("{host} ({}:{})", e.ip, e.port),
        None => format!("{}:{}", e.ip, e.port),
    }
}
