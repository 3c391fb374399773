//! What keytrail prints: the records of the JSON contract (docs/records.md). Both sinks print
//! these, and `replay` reads them back, so every record also deserializes; fields a hand-written
//! stream may leave out have defaults. Plain data: the stages that make records (the catalog,
//! the process tracker, the correlator, the rules) own their constructors.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{
    fingerprint::Fingerprint,
    names::NameCounts,
    policy::{Glob, Scope, Verdict},
    vocab::{
        AgentRef, Enforced, FindingAction, Hook, HostSource, Kind, Lifetime, Protocol, RuleId,
        Severity, Timestamp,
    },
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CredentialRef {
    pub id: String,
    pub kind: Kind,
    /// The file, or `env:NAME` for a secret environment variable.
    pub path: String,
    /// The uid that owns it: the file's owner, or for a variable the process's originating user.
    #[serde(default)]
    pub owner: Option<u32>,
    /// The context policy gives it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The endpoints it is meant for.
    #[serde(default, skip_serializing_if = "Scope::is_empty")]
    pub scope: Scope,
    /// The programs allowed to read it (globs on comm, exe or the exe's name); empty: anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readers: Vec<Glob>,
    /// Fingerprint of its (first) secret: keyed per run, never the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// The credential its secret was first seen in; the same for every copy of one secret.
    #[serde(default)]
    pub identity: String,
    /// How long it lives, where its secrets' shapes say: `long` (until revoked) or `short`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Lifetime>,
    /// Fingerprints of all its secrets (`fingerprint` is the first's), to tell it in a request.
    #[serde(skip)]
    pub fingerprints: Vec<Fingerprint>,
    /// An MCP configuration's tool servers, each a credential of its own (context
    /// `tool:<server>`): a use of the configuration is the use of the one whose scope holds
    /// the endpoint. Not printed: a use names the part it was.
    #[serde(skip)]
    pub parts: Vec<Arc<CredentialRef>>,
}

impl CredentialRef {
    /// The identity rules group by: the recorded one, else the id.
    pub fn identity(&self) -> &str {
        if self.identity.is_empty() {
            &self.id
        } else {
            &self.identity
        }
    }
}

/// What enforcement does (`ready.enforcement`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementReport {
    /// `off` (no credential's policy says deny), `deny`, or `dry-run` (refuses nothing, reports
    /// `would-deny`).
    pub mode: String,
    /// Credentials whose connects outside their scope are refused, and their distinct scopes.
    pub credentials: usize,
    pub scopes: usize,
    /// Whether opens of a credential by a reader policy does not allow are refused, and if
    /// not, why.
    pub reads: String,
    /// Whether connects with a credential in another context are refused (`deny`, `dry-run`,
    /// `off`), and if the kernel cannot, why.
    #[serde(default)]
    pub contexts: String,
}

/// How a use is known (`credential_use.proof`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proof {
    /// The credential was seen in the request the connection sent.
    Sent,
    /// The process read it, then connected.
    #[default]
    Inferred,
}

/// The request a proven use went out in: its method, `Host`, and path without the query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRef {
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: u32,
    #[serde(default)]
    pub ppid: u32,
    #[serde(default)]
    pub comm: String,
    #[serde(default)]
    pub exe: String,
    /// The owner of the executable `exe` resolves to, where keytrail could look (a live
    /// process): allowed readers must be system programs, owned by root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_owner: Option<u32>,
    /// Arguments, with known secrets and secret-looking values redacted.
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub loginuid: Option<u32>,
    /// The unit of authorization: a label or rule's context, else `uid:N/session:S`.
    pub context: String,
    #[serde(default)]
    pub agent: Option<AgentRef>,
}

impl ProcessRef {
    /// The user the action is for: the login user where one is set, else the real uid.
    pub fn originating_uid(&self) -> u32 {
        self.loginuid.unwrap_or(self.uid)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EndpointRef {
    pub ip: String,
    pub port: u16,
    pub protocol: Protocol,
    /// The host name the process meant, where one was learned.
    #[serde(default)]
    pub host: Option<String>,
    /// How `host` was learned.
    #[serde(default)]
    pub host_source: Option<HostSource>,
    /// The connected address came from a DNS answer for `host` (`host_source` is `dns`): the
    /// name scopes are judged by. Written for readers; keytrail itself goes by `host_source`.
    #[serde(default)]
    pub host_verified: bool,
    /// The server name the connection's TLS hello gave, where it differs from the name DNS
    /// gave the address (`host`): what the process claimed, not what it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_claimed: Option<String>,
    /// The connect was refused (`denied`), or would have been (`would-deny`, a dry run), by
    /// enforcement: outside the scope of every credential the process held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforced>,
    /// Why: the rule whose refusal it was (`out-of-scope-use`, `cross-context-reuse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement_rule: Option<RuleId>,
}

impl EndpointRef {
    /// Names the endpoint by its TLS hello's server name. `answered`: DNS told the process
    /// that name is at this address (one of several names sharing it), which verifies it. Else
    /// a name from DNS stays: the address came from it, where the server name is only what the
    /// process says; a different server name is kept as claimed.
    pub fn name_by_tls(&mut self, server_name: &str, answered: bool) {
        match (&self.host, self.host_source) {
            _ if answered => {
                self.host = Some(server_name.to_owned());
                self.host_source = Some(HostSource::Dns);
                self.host_verified = true;
                self.host_claimed = None;
            }
            (Some(resolved), Some(HostSource::Dns)) => {
                if resolved != server_name {
                    self.host_claimed = Some(server_name.to_owned());
                }
            }
            _ => {
                self.host = Some(server_name.to_owned());
                self.host_source = Some(HostSource::TlsSni);
            }
        }
    }

    /// Where this endpoint stands with respect to `scope`: judged by its address, and by its
    /// name only when DNS gave it (the address came from an answer for that name). A name only
    /// the TLS hello gives is what the process claims, which anyone can (`curl --resolve
    /// api.github.com:443:ADDRESS`): to a scope it is an endpoint with no name.
    pub fn verdict(&self, scope: &Scope) -> Verdict {
        let verified = (self.host_source == Some(HostSource::Dns))
            .then_some(self.host.as_deref())
            .flatten();
        scope.check(self.ip.parse().ok(), self.port, verified)
    }
}

/// How a credential reached the process that used it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The process read it, then connected.
    Read,
    /// The process already held the connection when it read the credential (ssh).
    HeldConnection,
    /// An ancestor read it; the process inherited it (a script reads a token, runs curl).
    Ancestor,
    /// A descendant in the same session read it and handed it up (git's credential helper).
    Descendant,
    /// Another process of the same agent read it (one task reads, the agent hands it to the
    /// next). Reported only against endpoints inside the credential's scope.
    Agent,
    /// Nobody of its lineage read it through a watched path, yet the process sent it: a copy
    /// (a file in /tmp, a pipe, a clipboard). Only a proven use can say so.
    #[serde(rename = "untracked-copy")]
    UntrackedCopy,
}

impl Via {
    /// Whether the using process held the credential itself (read it, or had a copy).
    pub fn by_reader(self) -> bool {
        matches!(self, Via::Read | Via::HeldConnection | Via::UntrackedCopy)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookReport {
    /// What the hook is for: process, credential-read, credential-open, connect.
    pub purpose: String,
    /// The hook attached, e.g. `tracepoint/filemap/mm_filemap_get_pages`.
    pub hook: String,
    /// The hook that was preferred and refused, when this one is its fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instead_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Records share their credential and process parts (`Arc`): one read makes an access record
/// and a use per connection, and each clone of those parts was several allocations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Ready {
        time: Timestamp,
        version: String,
        hooks: Vec<HookReport>,
        /// The TLS libraries whose writes keytrail reads (proof of use), as found at start;
        /// those found later are named in the log.
        tls_libraries: Vec<String>,
        /// Whose TLS writes are read: `holders` (credential holders only), `all`, or `off`.
        tls_writes: String,
        /// Where the policy came from: its file, or `embedded default`.
        policy: String,
        /// What policy's `action = "deny"` does on this host.
        enforcement: EnforcementReport,
        /// How fingerprints are keyed: `fleet` (a fleet key file: the same on every host that
        /// has it) or `host-local` (a key random per run).
        #[serde(default)]
        fingerprints: String,
        credentials: usize,
        processes: usize,
    },
    CredentialAccess {
        time: Timestamp,
        credential: Arc<CredentialRef>,
        process: Arc<ProcessRef>,
        hook: Hook,
        /// The open was refused (`denied`: the process got EACCES and read nothing), or would
        /// have been (`would-deny`, a dry run), by read denial.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enforcement: Option<Enforced>,
        /// Why: `unexpected-reader` (a program outside the credential's allowed readers) or
        /// `cross-context-reuse` (a process acting in another context than the credential's
        /// owner).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enforcement_rule: Option<RuleId>,
    },
    Connection {
        time: Timestamp,
        process: Arc<ProcessRef>,
        endpoint: EndpointRef,
    },
    CredentialUse {
        time: Timestamp,
        credential: Arc<CredentialRef>,
        process: Arc<ProcessRef>,
        endpoint: EndpointRef,
        via: Via,
        /// The process that read the credential.
        reader: Arc<ProcessRef>,
        /// Whether the credential was seen in the request (`sent`), or only read before the
        /// connect (`inferred`).
        #[serde(default)]
        proof: Proof,
        /// For a proven use: the request that carried it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<RequestRef>,
    },
    Finding(Box<Finding>),
    Stats {
        time: Timestamp,
        events: u64,
        dropped: u64,
        findings: u64,
        /// Of `dropped`: lost because a ring buffer was full.
        ringbuf_full: u64,
        /// Of `ringbuf_full`: from the ring of credential accesses and connects (the other
        /// ring holds process lifecycle and packets).
        #[serde(default)]
        critical_full: u64,
        /// Connects sent through the other ring because their user had spent its budget in
        /// the critical one (not lost; a user flooding it).
        #[serde(default)]
        critical_demoted: u64,
        /// Of `dropped`: bytes from the kernel that did not decode.
        undecodable: u64,
        /// Runs of keytrail's kernel programs the kernel skipped because the program was
        /// already running on that CPU (a run preempted inside it): an access in one was not
        /// seen. Not in `dropped`: most such runs were reads of other files.
        #[serde(default)]
        missed_runs: u64,
        /// What endpoint naming saw: DNS answers parsed, and the malformed and truncated
        /// ones that were ignored; TLS server names.
        #[serde(default)]
        names: NameCounts,
        /// What was forgotten to keep memory bounded.
        #[serde(default)]
        evicted: Evictions,
        /// Records bound for NATS (`--nats`): how many the stream acknowledged, and the spool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fleet: Option<FleetCounts>,
    },
}

/// The NATS publisher's counts since start (`stats.fleet`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetCounts {
    /// Records the stream acknowledged.
    pub published: u64,
    /// Bytes waiting in the spool, not yet acknowledged.
    pub spooled_bytes: u64,
    /// Records dropped because the spool was full.
    pub spool_dropped: u64,
}

/// What keytrail forgot to keep its memory bounded, counted since start. Each is a place where
/// a later record may lack what an earlier one would have given it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evictions {
    /// Remembered credential reads dropped, oldest first, while their lineage still lived: a
    /// later connect can no longer be a use of them.
    pub reads: u64,
    /// Connections forgotten past the per-process cap: a later read can no longer be a use of
    /// them.
    pub connections: u64,
    /// Accesses no longer kept as evidence for findings.
    pub evidence: u64,
    /// Entries of rule memory cleared (identities, agent contexts): a finding may be reported
    /// again.
    pub rule_memory: u64,
    /// Secrets learned from environment variables forgotten, oldest first, past 4,096: one is
    /// redacted from arguments by its fingerprint again once it is seen again.
    #[serde(default)]
    pub secrets: u64,
    /// Uses remembered to report each once, forgotten past 65,536: a use may be reported again.
    #[serde(default)]
    pub uses: u64,
}

/// A rule's verdict, with who, what, where and the records that prove it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub time: Timestamp,
    pub rule: RuleId,
    pub severity: Severity,
    pub summary: String,
    /// The originating user the action was for.
    pub user: u32,
    pub agent: Option<AgentRef>,
    pub context: String,
    /// The credential it is about; absent for `monitor-blind`, which is about keytrail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Arc<CredentialRef>>,
    pub process: Arc<ProcessRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointRef>,
    /// The records that prove it, oldest first.
    pub evidence: Vec<Record>,
    /// How many times it happened in this fold window (1 when first reported).
    pub count: u64,
    /// What came of it: `reported`, or `denied` / `would-deny` when enforcement refused (or
    /// would have refused) the connect it is about.
    #[serde(default)]
    pub action: FindingAction,
}

impl Record {
    pub fn time(&self) -> Timestamp {
        match self {
            Record::Ready { time, .. }
            | Record::CredentialAccess { time, .. }
            | Record::Connection { time, .. }
            | Record::CredentialUse { time, .. }
            | Record::Stats { time, .. } => *time,
            Record::Finding(f) => f.time,
        }
    }

    /// Its `type`, as the contract names it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::Ready { .. } => "ready",
            Record::CredentialAccess { .. } => "credential_access",
            Record::Connection { .. } => "connection",
            Record::CredentialUse { .. } => "credential_use",
            Record::Finding(_) => "finding",
            Record::Stats { .. } => "stats",
        }
    }
}
