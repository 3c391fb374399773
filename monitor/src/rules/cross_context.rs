//! `cross-context-reuse`, in two forms:
//! - by policy: a credential that policy gives to one context is read or used in another;
//! - by hand-off: a use that counts, by a process that never read the credential, in another
//!   context than the process of its lineage that read it (unless that context owns it).
use super::rule::{Access, Evidence, Rule, Use, endpoint_name, finding};
use crate::{
    record::{CredentialRef, EndpointRef, Finding, ProcessRef, Record},
    vocab::{Enforced, Hook, RuleId},
};
use std::sync::Arc;

pub struct CrossContext;

impl Rule for CrossContext {
    fn id(&self) -> RuleId {
        RuleId::CrossContextReuse
    }

    fn on_access(&mut self, a: &Access, _: &dyn Evidence, found: &mut Vec<Finding>) {
        // Refused in the kernel for its context (readers.rs): reported even where the contexts
        // this side knows would not say so, since the process was refused all the same.
        let refused = a
            .enforcement
            .filter(|_| a.enforcement_rule == Some(self.id()));
        let moved = a.hook == Hook::Move;
        owned_elsewhere(
            a.record,
            a.credential,
            a.process,
            None,
            (refused, moved),
            found,
        );
    }

    fn on_use(&mut self, u: &Use, evidence: &dyn Evidence, found: &mut Vec<Finding>) {
        owned_elsewhere(
            u.record,
            u.credential,
            u.process,
            Some(u.endpoint),
            (None, false),
            found,
        );
        // A hand-off to the context that owns the credential is where it belongs: an agent
        // starting its tool server with the token its MCP configuration gives that tool.
        let to_owner = u.credential.context.as_ref() == Some(&u.process.context);
        if !u.counts || u.via.by_reader() || u.reader.context == u.process.context || to_owner {
            return;
        }
        let (credential, process, reader) = (u.credential, u.process, u.reader);
        found.push(finding(
            self.id(),
            format!(
                "{} credential {} read in context {} by {} (pid {}) was used in context {} by {} (pid {}) against {}",
                credential.kind,
                credential.path,
                reader.context,
                reader.comm,
                reader.pid,
                process.context,
                process.comm,
                process.pid,
                endpoint_name(u.endpoint)
            ),
            credential,
            process,
            Some(u.endpoint),
            evidence.of_use(credential, reader, u.record),
        ));
    }
}

/// A credential a context owns, read, moved (or refused) or used in another; `refused`: what
/// read denial made of the read, and whether it was a move.
fn owned_elsewhere(
    record: &Record,
    credential: &Arc<CredentialRef>,
    process: &Arc<ProcessRef>,
    endpoint: Option<&EndpointRef>,
    (refused, moved): (Option<Enforced>, bool),
    found: &mut Vec<Finding>,
) {
    let owner = credential
        .context
        .as_ref()
        .filter(|o| **o != process.context)
        .map(|o| format!("context {o}"));
    let Some(owner) = owner.or_else(|| refused.map(|_| "another context".into())) else {
        return;
    };
    let did = match (endpoint, refused, moved) {
        (Some(_), _, _) => "was used",
        (None, Some(Enforced::Denied), false) => "was refused to a read",
        (None, Some(Enforced::WouldDeny), false) => "would have been refused to a read",
        (None, Some(Enforced::Denied), true) => "was refused to a move",
        (None, Some(Enforced::WouldDeny), true) => "would have been refused to a move",
        (None, None, true) => "was moved",
        (None, None, false) => "was read",
    };
    let mut found_one = finding(
        RuleId::CrossContextReuse,
        format!(
            "{} credential {} belongs to {owner} and {did} in context {} by {} (pid {})",
            credential.kind, credential.path, process.context, process.comm, process.pid
        ),
        credential,
        process,
        endpoint,
        vec![record.clone()],
    );
    if refused.is_some() {
        found_one.action = refused.into();
    }
    found.push(found_one);
}
