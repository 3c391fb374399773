//! The vocabulary of keytrail's records: the small, closed sets of names the record contract
//! (docs/records.md) is written in, and the timestamp every record carries. Plain data at the
//! bottom of the crate: this module imports nothing of keytrail's, so every stage can speak it
//! without depending on another stage.
mod kind;
mod rule;
mod time;

use serde::{Deserialize, Serialize};

pub use self::{
    kind::{ALL as ALL_KINDS, Kind},
    rule::{RuleId, Severity},
    time::Timestamp,
};

/// How long a credential lives, as its secrets' shapes say (`credential.lifetime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifetime {
    /// Good until revoked: a key, a personal token, an OAuth refresh token.
    Long,
    /// Expires by itself: a session, an installation token, an access token.
    Short,
}

/// How a credential access was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Read,
    Mmap,
    Open,
    /// A rename or hard link read denial refused (or would have, in a dry run): no read.
    Move,
    /// A secret variable in the environment at exec.
    Environment,
}

/// An endpoint's transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Other,
}

/// How an endpoint's host name was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostSource {
    /// A DNS answer received on the host (the connecting process's own, where it had one).
    Dns,
    /// The server name in the connection's TLS ClientHello.
    TlsSni,
}

/// What enforcement did to a connect the kernel refused or would have refused
/// (`endpoint.enforcement`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforced {
    /// Refused: the process got EPERM, no connection was made.
    Denied,
    /// Would have been refused; let through (a dry run).
    WouldDeny,
}

/// What came of a finding (`finding.action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingAction {
    /// Reported only.
    #[default]
    Reported,
    /// The act was refused in the kernel.
    Denied,
    /// The act would have been refused; a dry run let it through.
    WouldDeny,
}

impl From<Option<Enforced>> for FindingAction {
    fn from(enforced: Option<Enforced>) -> Self {
        match enforced {
            None => FindingAction::Reported,
            Some(Enforced::Denied) => FindingAction::Denied,
            Some(Enforced::WouldDeny) => FindingAction::WouldDeny,
        }
    }
}

/// The root of an agent's process tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentRef {
    /// The `[[agents]]` rule's name, or the starting process's comm for labelled tasks.
    pub name: String,
    pub pid: u32,
}
