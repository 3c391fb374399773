//! The rules: credential accesses and uses in, findings out (docs/records.md, `finding`). Pure and
//! fed records, so the daemon and `keytrail replay` run the very same engine.
//!
//! Each rule is a file of its own with its own state, behind the `Rule` trait (rule.rs). Adding a
//! rule is that file, a line in `all_rules`, a rule id in `vocab`, and a scenario folder under
//! scenarios/.
mod cross_context;
mod evidence;
mod fold;
mod identity_collapse;
mod identity_mesh;
mod out_of_scope;
mod rule;
mod standing_credential;
mod unexpected_reader;

use std::sync::Arc;

use self::{
    evidence::Accesses,
    rule::{Access, Rule, Use},
};
use crate::{
    policy::Policy,
    record::{Finding, Record},
    vocab::{RuleId, Severity, Timestamp},
};

/// Every rule, in the order their findings about one record are reported.
fn all_rules() -> Vec<Box<dyn Rule + Send>> {
    vec![
        Box::new(unexpected_reader::UnexpectedReader),
        Box::new(out_of_scope::OutOfScope),
        Box::new(cross_context::CrossContext),
        Box::<identity_collapse::IdentityCollapse>::default(),
        Box::<identity_mesh::IdentityMesh>::default(),
        Box::new(standing_credential::StandingCredential),
    ]
}

/// What the engine forgot to stay bounded, for `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Accesses no longer remembered as evidence.
    pub accesses: u64,
    /// Entries of rule memory cleared (identities, agent contexts).
    pub rule_memory: u64,
}

pub struct Engine {
    /// The rules policy switches on, each with its severity.
    rules: Vec<(Box<dyn Rule + Send>, Severity)>,
    folder: fold::Folder,
    accesses: Accesses,
    rule_memory_cleared: u64,
    reported: u64,
    /// `monitor-blind`'s severity, when policy leaves it on.
    blind: Option<Severity>,
}

impl Engine {
    pub fn new(policy: Arc<Policy>) -> Self {
        let rules = all_rules()
            .into_iter()
            .filter_map(|rule| {
                let severity = policy.severity(rule.id())?;
                Some((rule, severity))
            })
            .collect();
        Self {
            rules,
            folder: fold::Folder::new(policy.fold_window()),
            accesses: Accesses::default(),
            rule_memory_cleared: 0,
            reported: 0,
            blind: policy.severity(RuleId::MonitorBlind),
        }
    }

    /// Policy was reloaded: each rule takes its new severity, a rule switched off goes and one
    /// switched on starts afresh; the rules still on keep what they remember, and the fold
    /// windows open now take the new length.
    pub fn set_policy(&mut self, policy: &Policy) {
        let mut kept: Vec<(Box<dyn Rule + Send>, Severity)> = Vec::new();
        let mut old = std::mem::take(&mut self.rules);
        for fresh in all_rules() {
            let id = fresh.id();
            let Some(severity) = policy.severity(id) else {
                continue;
            };
            let rule = match old.iter().position(|(r, _)| r.id() == id) {
                Some(at) => old.swap_remove(at).0,
                None => fresh,
            };
            kept.push((rule, severity));
        }
        self.rules = kept;
        self.folder.set_window(policy.fold_window());
        self.blind = policy.severity(RuleId::MonitorBlind);
    }

    /// A `monitor-blind` finding the daemon made (it is about keytrail, not about records):
    /// folded and counted like the others, at the severity policy gives it.
    pub fn report_blind(&mut self, finding: Finding, out: &mut Vec<Record>) {
        if let Some(severity) = self.blind {
            report(
                &mut self.folder,
                &mut self.reported,
                vec![finding],
                severity,
                out,
            );
        }
    }

    /// Findings reported so far.
    pub fn findings(&self) -> u64 {
        self.reported
    }

    pub fn forgotten(&self) -> Forgotten {
        Forgotten {
            accesses: self.accesses.evicted,
            rule_memory: self.rule_memory_cleared,
        }
    }

    /// Looks at one record; findings it proves are appended to `out`.
    pub fn observe(&mut self, record: &Record, out: &mut Vec<Record>) {
        match record {
            Record::CredentialAccess {
                credential,
                process,
                hook,
                enforcement,
                enforcement_rule,
                ..
            } => {
                self.accesses.remember(credential, process, record);
                let access = Access {
                    record,
                    credential,
                    process,
                    hook: *hook,
                    enforcement: *enforcement,
                    enforcement_rule: *enforcement_rule,
                };
                for (rule, severity) in &mut self.rules {
                    let mut found = Vec::new();
                    rule.on_access(&access, &self.accesses, &mut found);
                    report(&mut self.folder, &mut self.reported, found, *severity, out);
                }
            }
            Record::CredentialUse {
                credential,
                process,
                endpoint,
                via,
                reader,
                proof,
                ..
            } => {
                let used = Use::new(record, credential, process, endpoint, *via, reader, *proof);
                for (rule, severity) in &mut self.rules {
                    let mut found = Vec::new();
                    rule.on_use(&used, &self.accesses, &mut found);
                    report(&mut self.folder, &mut self.reported, found, *severity, out);
                }
            }
            _ => {}
        }
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
        for (rule, _) in &mut self.rules {
            self.rule_memory_cleared += rule.sweep();
        }
    }
}

/// Gives each finding its severity and reports what folding lets through.
fn report(
    folder: &mut fold::Folder,
    reported: &mut u64,
    found: Vec<Finding>,
    severity: Severity,
    out: &mut Vec<Record>,
) {
    for mut f in found {
        // Policy's severity, or the rule's own when it says the finding is worse (a proven
        // out-of-scope use is critical).
        f.severity = f.severity.max(severity);
        if let Some(f) = folder.fold(f) {
            *reported += 1;
            out.push(Record::Finding(Box::new(f)));
        }
    }
}

#[cfg(test)]
mod tests;
