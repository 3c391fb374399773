//! Rule ids and severities: part of the contract, never renamed.
use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad a finding is (contract: low|medium|high|critical).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// The rule ids: part of the contract, never renamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    CrossContextReuse,
    IdentityMesh,
    IdentityCollapse,
    OutOfScopeUse,
    UnexpectedReader,
    /// An agent used a credential that lives until revoked (`credential.lifetime`).
    StandingCredential,
    /// Not a rule over records: the daemon's, when kernel events were lost (a flood).
    MonitorBlind,
}

impl RuleId {
    #[cfg(test)]
    pub const ALL: [RuleId; 7] = [
        RuleId::CrossContextReuse,
        RuleId::IdentityMesh,
        RuleId::IdentityCollapse,
        RuleId::OutOfScopeUse,
        RuleId::UnexpectedReader,
        RuleId::StandingCredential,
        RuleId::MonitorBlind,
    ];

    pub fn default_severity(self) -> Severity {
        match self {
            RuleId::IdentityMesh | RuleId::UnexpectedReader | RuleId::StandingCredential => {
                Severity::Medium
            }
            _ => Severity::High,
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleId::CrossContextReuse => "cross-context-reuse",
            RuleId::IdentityMesh => "identity-mesh",
            RuleId::IdentityCollapse => "identity-collapse",
            RuleId::OutOfScopeUse => "out-of-scope-use",
            RuleId::UnexpectedReader => "unexpected-reader",
            RuleId::StandingCredential => "standing-credential",
            RuleId::MonitorBlind => "monitor-blind",
        })
    }
}
