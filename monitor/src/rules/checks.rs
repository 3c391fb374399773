//! The five rules, one function each; `Engine` decides which records reach them.
use std::{collections::BTreeMap, sync::Arc};

use foldhash::HashMap;

use crate::{
    record::{CredentialRef, EndpointRef, Finding, ProcessRef, Record},
    vocab::{Hook, RuleId, Severity},
};

/// `unexpected-reader`: a reader outside the credential's allowed readers.
pub fn unexpected_reader(
    access: &Record,
    credential: &Arc<CredentialRef>,
    process: &Arc<ProcessRef>,
    hook: Hook,
    found: &mut Vec<Finding>,
) {
    if hook == Hook::Environment {
        return; // being started with a variable is not reading it
    }
    let readers = &credential.readers;
    let base = process.exe.rsplit('/').next().unwrap_or_default();
    if readers.is_empty()
        || readers
            .iter()
            .any(|g| g.matches(&process.comm) || g.matches(&process.exe) || g.matches(base))
    {
        return;
    }
    let allowed: Vec<&str> = readers.iter().map(|g| g.as_str()).collect();
    found.push(finding(
        RuleId::UnexpectedReader,
        format!(
            "{} (pid {}) read {} credential {}, which only {} may read",
            process.comm,
            process.pid,
            credential.kind,
            credential.path,
            allowed.join(", ")
        ),
        credential,
        process,
        None,
        vec![access.clone()],
    ));
}

/// `cross-context-reuse`, by policy: a credential that policy gives to one context is read or
/// used in another.
pub fn owned_elsewhere(
    record: &Record,
    credential: &Arc<CredentialRef>,
    process: &Arc<ProcessRef>,
    endpoint: Option<&EndpointRef>,
    found: &mut Vec<Finding>,
) {
    let Some(owner) = credential
        .context
        .as_ref()
        .filter(|o| **o != process.context)
    else {
        return;
    };
    let did = if endpoint.is_some() { "used" } else { "read" };
    found.push(finding(
        RuleId::CrossContextReuse,
        format!(
            "{} credential {} belongs to context {owner} and was {did} in context {} by {} (pid {})",
            credential.kind, credential.path, process.context, process.comm, process.pid
        ),
        credential,
        process,
        endpoint,
        vec![record.clone()],
    ));
}

/// `cross-context-reuse`, by hand-off: used in one context after a process of another context
/// of the same lineage read it, and the user never read it itself.
pub fn handed_across(
    credential: &Arc<CredentialRef>,
    process: &Arc<ProcessRef>,
    endpoint: &EndpointRef,
    reader: &ProcessRef,
    evidence: &[Record],
) -> Finding {
    finding(
        RuleId::CrossContextReuse,
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
            endpoint_name(endpoint)
        ),
        credential,
        process,
        Some(endpoint),
        evidence.to_vec(),
    )
}

/// `out-of-scope-use`: the reader connected outside the credential's scope.
pub fn out_of_scope(
    credential: &Arc<CredentialRef>,
    process: &Arc<ProcessRef>,
    endpoint: &EndpointRef,
    evidence: &[Record],
) -> Finding {
    finding(
        RuleId::OutOfScopeUse,
        format!(
            "{} (pid {}) read {} credential {} and connected to {}, outside its scope",
            process.comm,
            process.pid,
            credential.kind,
            credential.path,
            endpoint_name(endpoint)
        ),
        credential,
        process,
        Some(endpoint),
        evidence.to_vec(),
    )
}

/// `identity-collapse`: one user's credential used for another user, or one credential used
/// for several users.
pub fn collapse(
    users: &mut HashMap<String, BTreeMap<u32, Record>>,
    credential: &Arc<CredentialRef>,
    process: &Arc<ProcessRef>,
    endpoint: &EndpointRef,
    record: &Record,
    found: &mut Vec<Finding>,
) {
    let user = process.originating_uid();
    if let Some(owner) = credential.owner.filter(|o| *o != user) {
        found.push(finding(
            RuleId::IdentityCollapse,
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
            vec![record.clone()],
        ));
    }
    let by_user = users.entry(credential.identity().to_owned()).or_default();
    if by_user.contains_key(&user) {
        return;
    }
    by_user.insert(user, record.clone());
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
        severity: Severity::Medium, // set from policy when reported
        summary,
        user: process.originating_uid(),
        agent: process.agent.clone(),
        context: process.context.clone(),
        credential: credential.clone(),
        process: process.clone(),
        endpoint: endpoint.cloned(),
        evidence,
        count: 1,
    }
}

fn endpoint_name(e: &EndpointRef) -> String {
    match &e.host {
        Some(host) => format!("{host} ({}:{})", e.ip, e.port),
        None => format!("{}:{}", e.ip, e.port),
    }
}

/// The endpoint of a use record, for summaries.
pub fn endpoint_text(record: &Record) -> Option<String> {
    match record {
        Record::CredentialUse { endpoint, .. } => Some(endpoint_name(endpoint)),
        _ => None,
    }
}
