//! The policy: which files are credentials and what each may do, how contexts and agents are
//! found, which rules report, and what is refused in the kernel (`action = "deny"`). Read from a
//! TOML file (`--config`, `KEYTRAIL_CONFIG`, /etc/keytrail/policy.toml: source.rs) or the
//! embedded default (`default.toml`, printed by `keytrail policy --default`). A file that does not check out
//! is refused with its path, line, column and field: keytrail does not start on it.
mod error;
pub mod scope;
mod source;
pub mod types;

use std::{collections::BTreeMap, path::Path, sync::OnceLock, time::Duration};

use serde::Deserialize;
use toml::Spanned;

pub use self::{
    error::PolicyError,
    scope::{Scope, Verdict},
    source::PolicySource,
    types::{Cidr, Glob},
};
use crate::vocab::{Kind, RuleId, Severity};

/// The embedded default policy, as shipped.
pub const DEFAULT_TEXT: &str = include_str!("default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub context: ContextSettings,
    #[serde(default)]
    pub contexts: Vec<Spanned<ContextRule>>,
    #[serde(default)]
    pub agents: Vec<Spanned<AgentRule>>,
    #[serde(default)]
    pub credentials: Vec<Spanned<CredentialRule>>,
    #[serde(default)]
    pub kinds: BTreeMap<Kind, KindDefaults>,
    #[serde(default)]
    pub environment: EnvironmentSettings,
    #[serde(default)]
    pub findings: FindingSettings,
    #[serde(default)]
    pub rules: BTreeMap<RuleId, RuleSettings>,
    #[serde(default)]
    pub names: NameSettings,
    #[serde(default)]
    pub enforcement: EnforcementSettings,
    #[serde(default)]
    pub proof: ProofSettings,
    #[serde(default)]
    pub fleet: FleetSettings,
}

/// The fleet: what makes this host's records comparable with other hosts', and the NATS
/// JetStream stream they go to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSettings {
    /// A key file, the same on every host (root's, mode 0600, at least 32 bytes, never sent):
    /// fingerprints are keyed with it, so one secret has one fingerprint across hosts and
    /// runs. Without it, the key is random per run and fingerprints are host-local.
    #[serde(default)]
    pub key_file: Option<std::path::PathBuf>,
    /// The NATS server records also go to (`--nats` overrides it): `nats://HOST:PORT`.
    #[serde(default)]
    pub nats: Option<String>,
    /// The JetStream stream (made if missing, subjects `keytrail.>`).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Where records wait until the stream acknowledged them.
    #[serde(default = "default_spool_dir")]
    pub spool_dir: std::path::PathBuf,
    /// The spool's bound in bytes; past it new records are dropped and counted.
    #[serde(default = "default_spool_max")]
    pub spool_max_bytes: u64,
    /// A NATS credentials file (JWT and nkey seed) for the connection.
    #[serde(default)]
    pub creds_file: Option<std::path::PathBuf>,
    /// A file (root's, 0600) whose first line is `user:password`.
    #[serde(default)]
    pub user_password_file: Option<std::path::PathBuf>,
    /// The CA of the server's certificate; TLS is then required.
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
}

fn default_stream() -> String {
    "KEYTRAIL".into()
}

fn default_spool_dir() -> std::path::PathBuf {
    "/var/lib/keytrail/spool".into()
}

fn default_spool_max() -> u64 {
    256 << 20
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self {
            key_file: None,
            nats: None,
            stream: default_stream(),
            spool_dir: default_spool_dir(),
            spool_max_bytes: default_spool_max(),
            creds_file: None,
            user_password_file: None,
            tls_ca_file: None,
        }
    }
}

/// Where proof of use is looked for.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofSettings {
    /// Whose writes into TLS connections are read (uprobes on the TLS libraries' write
    /// functions).
    #[serde(default)]
    pub tls: TlsProof,
}

/// Whose TLS writes are read. Each write read costs a trap into the kernel (some 14 us on a VM
/// where traps are dear).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsProof {
    /// Processes that hold a credential (the reader, and its ancestors of the same user and
    /// session): the others pay nothing. A holder is followed once its read is handled, some
    /// 10-20 ms after it: a tool that sends at once (git's credential helper, `curl -H
    /// "...$(cat token)"`) is often faster, and its use stays inferred. A copy sent by a
    /// process that never read is not seen.
    Holders,
    /// Every process that maps a hooked library: proof from the first request, and a secret
    /// copied out of band (a file, a pipe, a clipboard) and sent over TLS by a process that
    /// never read it is caught too (`untracked-copy`).
    #[default]
    All,
    /// None: uses over TLS are inferred.
    Off,
}

impl TlsProof {
    pub fn name(self) -> &'static str {
        match self {
            TlsProof::Holders => "holders",
            TlsProof::All => "all",
            TlsProof::Off => "off",
        }
    }
}

/// What to do when a rule fires: report it, or refuse the act in the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    #[default]
    Report,
    Deny,
}

/// How `action = "deny"` is carried out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnforcementSettings {
    /// Refuse nothing; report what would have been refused (`would-deny`). Also
    /// `keytrail run --dry-run-enforce`.
    #[serde(default)]
    pub dry_run: bool,
    /// Executables (absolute paths) whose processes are never refused, whatever they hold.
    #[serde(default)]
    pub exempt: Vec<std::path::PathBuf>,
}

/// Where names for endpoints may come from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameSettings {
    /// DNS servers whose answers name endpoints, besides those the host's resolv.conf files
    /// name (a container runtime's, say). Answers from any other server name nothing.
    #[serde(default)]
    pub resolvers: Vec<Cidr>,
}

/// What policy says of one credential: decided once, when the catalog finds the credential (or
/// when `replay` reads its records), and carried in its record, so rules read records only.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CredentialFacts {
    /// Its kind's scope and its rule's.
    pub scope: Scope,
    /// Its rule's readers, else its kind's; empty means anyone.
    pub readers: Vec<Glob>,
    /// The context its rule gives it.
    pub context: Option<String>,
    /// Its connects outside its scope are refused in the kernel: its rule's `action`, else
    /// `[rules.out-of-scope-use]`'s.
    pub deny: bool,
    /// Its opens by programs outside its readers are refused in the kernel (where BPF LSM
    /// runs): its rule's `action`, else `[rules.unexpected-reader]`'s; never when anyone may
    /// read it.
    pub deny_reads: bool,
    /// Its use in another context than the one it was read in, or the one that owns it, is
    /// refused in the kernel (where contexts are labels): its rule's `action`, else
    /// `[rules.cross-context-reuse]`'s; only while that rule is on.
    pub deny_context: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSettings {
    /// The environment variable whose value, set at exec, names the process's context.
    #[serde(default = "default_label")]
    pub label: String,
}

impl Default for ContextSettings {
    fn default() -> Self {
        Self {
            label: default_label(),
        }
    }
}

fn default_label() -> String {
    "KEYTRAIL_CONTEXT".into()
}

/// Which processes a rule is about. A process matches when any listed pattern matches.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessMatcher {
    #[serde(default)]
    pub comm: Vec<Glob>,
    #[serde(default)]
    pub exe: Vec<Glob>,
    /// Matched against the arguments joined by spaces.
    #[serde(default)]
    pub argv: Vec<Glob>,
    #[serde(default)]
    pub cgroup: Vec<Glob>,
}

/// What a matcher is shown of a process.
pub struct ProcessFacts<'a> {
    pub comm: &'a str,
    pub exe: &'a str,
    pub argv: &'a [String],
    pub cgroup: Option<&'a str>,
}

impl ProcessMatcher {
    pub fn is_empty(&self) -> bool {
        self.comm.is_empty()
            && self.exe.is_empty()
            && self.argv.is_empty()
            && self.cgroup.is_empty()
    }

    pub fn matches(&self, p: &ProcessFacts) -> bool {
        let any = |globs: &[Glob], text: &str| globs.iter().any(|g| g.matches(text));
        any(&self.comm, p.comm)
            || any(&self.exe, p.exe)
            || (!self.argv.is_empty() && any(&self.argv, &p.argv.join(" ")))
            || p.cgroup.is_some_and(|c| any(&self.cgroup, c))
    }
}

/// One way to find a context; exactly one field is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextRule {
    /// The process's cgroup path, when it matches, is the context.
    pub cgroup: Option<Glob>,
    /// A matching process starts a context for its subtree.
    pub root: Option<ProcessMatcher>,
    /// The originating user is the context.
    pub user: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRule {
    pub name: String,
    #[serde(flatten)]
    pub matcher: ProcessMatcher,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRule {
    pub kind: Kind,
    /// Absolute paths or globs; `~/` means every home directory.
    pub paths: Vec<String>,
    /// The context that owns the credential: reads and uses elsewhere are cross-context.
    pub context: Option<String>,
    #[serde(default)]
    pub hosts: Vec<Glob>,
    #[serde(default)]
    pub cidrs: Vec<Cidr>,
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Programs (comm or exe globs) allowed to read it; empty means the kind's readers.
    #[serde(default)]
    pub readers: Vec<Glob>,
    /// What an address without a learned name is to a scope written in names.
    #[serde(default)]
    pub unnamed: Unnamed,
    /// `deny`: a process holding it may not connect outside its scope, nor with it in another
    /// context (while `cross-context-reuse` is on), and a program outside its readers may not
    /// open it (all refused in the kernel; the open where BPF LSM runs); unset: as
    /// `[rules.out-of-scope-use]`, `[rules.cross-context-reuse]` and
    /// `[rules.unexpected-reader]` say.
    pub action: Option<Action>,
    /// `paths` as globs that match any home, compiled on first use.
    #[serde(skip)]
    path_globs: OnceLock<Vec<Glob>>,
}

/// `unnamed` in a credential rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unnamed {
    /// Outside the scope (the default).
    #[default]
    OutOfScope,
    /// Neither in nor out: nothing fires for it.
    Allow,
}

impl CredentialRule {
    pub fn scope(&self) -> Scope {
        Scope {
            hosts: self.hosts.clone(),
            cidrs: self.cidrs.clone(),
            ports: self.ports.clone(),
            allow_unnamed: self.unnamed == Unnamed::Allow,
        }
    }

    /// Whether a recorded path is one of this rule's (for replay, where homes may differ).
    pub fn covers(&self, path: &str) -> bool {
        let globs = self.path_globs.get_or_init(|| {
            self.paths
                .iter()
                .filter_map(|p| {
                    let pattern = match p.strip_prefix("~/") {
                        Some(rest) => format!("*/{rest}"),
                        None => p.clone(),
                    };
                    Glob::new(&pattern).ok()
                })
                .collect()
        });
        globs.iter().any(|g| g.matches(path))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindDefaults {
    #[serde(default)]
    pub hosts: Vec<Glob>,
    #[serde(default)]
    pub cidrs: Vec<Cidr>,
    #[serde(default)]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub readers: Vec<Glob>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSettings {
    /// Names (globs) of variables that hold secrets.
    #[serde(default)]
    pub secrets: Vec<Glob>,
    /// The kind of a secret variable by its name.
    #[serde(default)]
    pub kinds: BTreeMap<Kind, Vec<Glob>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingSettings {
    /// Repeats of one rule for one credential and process are folded within this window.
    #[serde(default = "default_window")]
    pub fold_window: types::HumanDuration,
}

impl Default for FindingSettings {
    fn default() -> Self {
        Self {
            fold_window: default_window(),
        }
    }
}

fn default_window() -> types::HumanDuration {
    types::HumanDuration(Duration::from_secs(60))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub severity: Option<Severity>,
    /// `deny` (out-of-scope-use and cross-context-reuse: the connect; unexpected-reader: the
    /// open, where BPF LSM runs): refuse what the rule reports, in the kernel.
    pub action: Option<Action>,
}

fn yes() -> bool {
    true
}

impl Policy {
    /// The embedded default. It is checked by a unit test, so this cannot fail in a release.
    pub fn embedded() -> Self {
        Self::parse(DEFAULT_TEXT, Path::new("<embedded default>"))
            .expect("the embedded default policy is valid")
    }

    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let policy: Policy =
            toml::from_str(text).map_err(|e| PolicyError::at(path, text, e.span(), e.message()))?;
        policy.validate(text, path)?;
        Ok(policy)
    }

    /// Checks what the types alone cannot.
    fn validate(&self, text: &str, path: &Path) -> Result<(), PolicyError> {
        let fail = |span: std::ops::Range<usize>, message: String| {
            Err(PolicyError::at(path, text, Some(span), &message))
        };
        for rule in &self.contexts {
            let r = rule.get_ref();
            let set = [r.cgroup.is_some(), r.root.is_some(), r.user == Some(true)];
            if set.iter().filter(|s| **s).count() != 1 {
                return fail(
                    rule.span(),
                    "[[contexts]]: set exactly one of `cgroup`, `root` or `user = true`".into(),
                );
            }
            if r.root.as_ref().is_some_and(ProcessMatcher::is_empty) {
                return fail(
                    rule.span(),
                    "[[contexts]] field `root`: names no process".into(),
                );
            }
        }
        for agent in &self.agents {
            if agent.get_ref().matcher.is_empty() {
                return fail(
                    agent.span(),
                    "[[agents]]: set at least one of `comm`, `exe`, `argv`, `cgroup`".into(),
                );
            }
        }
        for credential in &self.credentials {
            let c = credential.get_ref();
            if c.paths.is_empty() {
                return fail(
                    credential.span(),
                    "[[credentials]] field `paths`: is empty".into(),
                );
            }
            for p in &c.paths {
                if !(p.starts_with('/') || p.starts_with("~/")) {
                    return fail(
                        credential.span(),
                        format!(
                            "[[credentials]] field `paths`: `{p}` must be absolute or start with `~/`"
                        ),
                    );
                }
                if let Err(e) = Glob::new(p) {
                    return fail(
                        credential.span(),
                        format!("[[credentials]] field `paths`: {e}"),
                    );
                }
            }
        }
        for (rule, settings) in &self.rules {
            let refusable = [
                RuleId::OutOfScopeUse,
                RuleId::UnexpectedReader,
                RuleId::CrossContextReuse,
            ];
            if settings.action == Some(Action::Deny) && !refusable.contains(rule) {
                let header = format!("[rules.{rule}]");
                let at = text.find(&header).unwrap_or(0);
                return fail(
                    at..at + header.len(),
                    format!(
                        "[rules.{rule}] field `action`: only out-of-scope-use (a connect), \
                         cross-context-reuse (a connect) and unexpected-reader (an open) can \
                         deny; the others report"
                    ),
                );
            }
        }
        if self.context.label.is_empty() || self.context.label.contains('=') {
            return fail(
                0..0,
                "[context] field `label`: must be a variable name".into(),
            );
        }
        Ok(())
    }

    /// The rule's severity, or `None` when the rule is switched off.
    pub fn severity(&self, rule: RuleId) -> Option<Severity> {
        match self.rules.get(&rule) {
            Some(s) if !s.enabled => None,
            Some(s) => Some(s.severity.unwrap_or(rule.default_severity())),
            None => Some(rule.default_severity()),
        }
    }

    /// The scope every credential of `kind` has.
    pub fn kind_scope(&self, kind: Kind) -> Scope {
        self.kinds
            .get(&kind)
            .map_or_else(Scope::default, |k| Scope {
                hosts: k.hosts.clone(),
                cidrs: k.cidrs.clone(),
                ports: k.ports.clone(),
                allow_unnamed: false,
            })
    }

    /// The first credential rule that names `path`.
    fn credential_rule(&self, path: &str) -> Option<&CredentialRule> {
        self.credentials
            .iter()
            .map(Spanned::get_ref)
            .find(|r| r.covers(path))
    }

    /// What policy says of the credential of `kind` at `path` (a file, or `env:NAME`).
    pub fn credential_facts(&self, kind: Kind, path: &str) -> CredentialFacts {
        let rule = self.credential_rule(path);
        let mut scope = self.kind_scope(kind);
        if let Some(rule) = rule {
            scope.extend(&rule.scope());
        }
        let readers = match rule {
            Some(rule) if !rule.readers.is_empty() => rule.readers.clone(),
            _ => self
                .kinds
                .get(&kind)
                .map_or_else(Vec::new, |k| k.readers.clone()),
        };
        let rule_action = |id| {
            self.rules
                .get(&id)
                .filter(|s| s.enabled)
                .and_then(|s| s.action)
        };
        let denies = |id| rule.and_then(|r| r.action).or(rule_action(id)) == Some(Action::Deny);
        // An open is refused only where the rule that reports it is on: never silently.
        let reports_readers = self.severity(RuleId::UnexpectedReader).is_some();
        CredentialFacts {
            scope,
            deny_reads: denies(RuleId::UnexpectedReader) && reports_readers && !readers.is_empty(),
            readers,
            context: rule.and_then(|r| r.context.clone()),
            deny: denies(RuleId::OutOfScopeUse),
            deny_context: denies(RuleId::CrossContextReuse)
                && self.severity(RuleId::CrossContextReuse).is_some(),
        }
    }

    /// Whether some credential's use in another context may be refused under this policy:
    /// the rule is on, and it or some credential rule says `deny`.
    pub fn may_refuse_contexts(&self) -> bool {
        let rule_denies = self
            .rules
            .get(&RuleId::CrossContextReuse)
            .is_some_and(|s| s.action == Some(Action::Deny));
        self.severity(RuleId::CrossContextReuse).is_some()
            && (rule_denies
                || self
                    .credentials
                    .iter()
                    .any(|c| c.get_ref().action == Some(Action::Deny)))
    }

    /// Whether the processes of `context` are in it by their label (what the kernel knows of
    /// contexts), not as a tool server, by a `[[contexts]]` rule (`cgroup:PATH`, `user:UID`,
    /// `COMM:PID`) or by default (`uid:UID/session:ID`).
    pub fn is_label_context(&self, context: &str) -> bool {
        let by_rule = !self.contexts.is_empty()
            && (context.starts_with("cgroup:")
                || context.starts_with("user:")
                || context.rsplit_once(':').is_some_and(|(_, pid)| {
                    !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
                }));
        !context.is_empty()
            && !context.starts_with("tool:")
            && !context.starts_with("uid:")
            && !by_rule
    }

    /// Whether a program run as `comm` from `path` is named like an allowed reader of some
    /// credential (the only programs whose resolved executable the rules need).
    pub fn names_a_reader(&self, comm: &str, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        let matches = |globs: &[Glob]| {
            globs
                .iter()
                .any(|g| g.matches(comm) || g.matches(name) || g.matches(path))
        };
        self.kinds.values().any(|k| matches(&k.readers))
            || self
                .credentials
                .iter()
                .any(|c| matches(&c.get_ref().readers))
    }

    /// The kind of environment variable `name` when it holds a secret.
    pub fn secret_variable(&self, name: &str) -> Option<Kind> {
        if !self.environment.secrets.iter().any(|g| g.matches(name)) {
            return None;
        }
        let kind = self
            .environment
            .kinds
            .iter()
            .find(|(_, globs)| globs.iter().any(|g| g.matches(name)))
            .map_or(Kind::Generic, |(kind, _)| *kind);
        Some(kind)
    }

    /// Whether any rule looks at cgroups (then they are read at exec).
    pub fn matches_cgroups(&self) -> bool {
        self.contexts.iter().any(|c| c.get_ref().cgroup.is_some())
            || self
                .agents
                .iter()
                .any(|a| !a.get_ref().matcher.cgroup.is_empty())
    }

    pub fn fold_window(&self) -> Duration {
        self.findings.fold_window.0
    }
}

#[cfg(test)]
mod tests;
