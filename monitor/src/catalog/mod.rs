//! The credential catalog: which files are credentials, resolved to their identity (device and
//! inode) so that every path to them counts. Built from the policy's credential paths for every
//! home directory, plus `--watch`; resolved again when files appear or are replaced (see
//! `watcher`). Each file is read once per resolve for the hosts it names (its scope) and the
//! fingerprints of its secrets.
pub mod contents;
mod homes;
mod identify;
mod open;
pub mod shape;
mod workspaces;

pub use self::homes::Homes;
pub use self::identify::kernel_dev;

use std::{
    collections::{BTreeMap, BTreeSet, btree_map::Entry},
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use monitor_common::FileKey;

use self::contents::mcp::ToolCommand;
use crate::{
    fingerprint::Fingerprint,
    policy::{Policy, Scope},
    record::CredentialRef,
    redact::{Origin, Secrets},
    vocab::Kind,
};

/// A place credentials may be: an absolute path, possibly with `*` globs.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub pattern: String,
    pub kind: Kind,
    /// The context that owns credentials found here, from policy.
    pub context: Option<String>,
    /// The scope policy gives them (their kind's and their rule's).
    pub scope: Scope,
    /// The home directory the pattern was made for (`~/` in policy): files found there are
    /// opened beneath it and must be its owner's (open.rs).
    pub home: Option<PathBuf>,
    /// The agent workspace it was made for (workspaces.rs), to be forgotten with it.
    pub workspace: Option<PathBuf>,
    /// The user `home` must belong to, when a user named it (a workspace): the agent's.
    pub owner: Option<u32>,
    /// It comes from policy's credential rules (made again when policy is reloaded).
    pub from_policy: bool,
}

impl Source {
    /// A place named on the command line: the kind's scope, no owning context.
    pub fn watched(pattern: String, kind: Kind, policy: &Policy) -> Self {
        Self {
            pattern,
            kind,
            context: None,
            scope: policy.kind_scope(kind),
            home: None,
            workspace: None,
            owner: None,
            from_policy: false,
        }
    }
}

/// A credential file that exists now.
#[derive(Clone, Debug, PartialEq)]
pub struct Credential {
    pub path: PathBuf,
    pub file: FileKey,
    /// False on filesystems whose reads bypass the page cache (tmpfs, ramfs): the filemap
    /// tracepoints do not see those, so an open hook is needed.
    pub page_cache: bool,
    /// Fingerprints of the secrets in the file.
    pub fingerprints: Vec<Fingerprint>,
    /// An MCP configuration's local servers, by name and command line.
    pub tools: Vec<ToolCommand>,
    /// The credential as records show it (id `kind:path`, stable across replacements of the
    /// file; kind; owner; context and scope, with what policy says of it): made once per
    /// resolve and shared by every record about it.
    pub record: Arc<CredentialRef>,
}

/// The id of a secret environment variable's credential: its name and fingerprint, since one
/// name holds different secrets in different processes.
pub fn env_credential_id(name: &str, print: Fingerprint) -> String {
    format!("env:{name}:{print}")
}

/// What a resolve changed, for the kernel's watch map.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub added: Vec<FileKey>,
    pub removed: Vec<FileKey>,
}

pub struct Catalog {
    sources: Vec<Source>,
    credentials: BTreeMap<FileKey, Credential>,
    /// Files found where credentials are, but refused (open.rs): watched for owner changes, so
    /// a file written as root and then given to its user is watched once it is the user's.
    refused: Vec<PathBuf>,
    /// Fingerprints of every secret seen, in files and in environments: the one place they are
    /// learned (`resolve`, `learn_variable`).
    secrets: Secrets,
    /// Patterns that matched more files than `MAX_GLOB_MATCHES`, said once each in the log.
    capped: BTreeSet<String>,
    /// Paths refused (a link where none may be, another user's file), said once each in the log.
    said_refused: BTreeSet<PathBuf>,
    /// Paths found to be another credential's file under another kind, said once each.
    collisions: BTreeSet<PathBuf>,
    /// The local tool servers of every MCP configuration found, and the credential of each
    /// server's secrets by fingerprint (a server started with its token in its environment
    /// holds that credential): made again at each resolve.
    tools: Vec<ToolCommand>,
    tool_secrets: BTreeMap<Fingerprint, Arc<CredentialRef>>,
    /// Every file credential's and tool credential's secrets, by fingerprint: a request that
    /// carries one names it (proof of use).
    by_print: BTreeMap<Fingerprint, Arc<CredentialRef>>,
    workspaces: workspaces::Workspaces,
    /// Sources were added or removed since the daemon last resolved (`take_changed`).
    changed: bool,
}

impl Catalog {
    pub fn new(sources: Vec<Source>, secrets: Secrets) -> Self {
        Self {
            sources,
            credentials: BTreeMap::new(),
            refused: Vec::new(),
            secrets,
            capped: Default::default(),
            said_refused: Default::default(),
            collisions: Default::default(),
            tools: Vec::new(),
            tool_secrets: BTreeMap::new(),
            by_print: BTreeMap::new(),
            workspaces: Default::default(),
            changed: false,
        }
    }

    /// Looks for the policy's credentials in `homes` too (accounts added since start).
    pub fn add_homes(&mut self, policy: &Policy, homes: &[PathBuf]) {
        self.sources.extend(Self::policy_sources(policy, homes));
    }

    /// Whether `dir` can be a workspace of a process of `uid` (workspaces.rs).
    pub fn can_be_workspace(dir: &Path, uid: u32) -> bool {
        workspaces::eligible(dir, uid)
    }

    /// Looks for a project's secret files in `dir`, where an agent of `uid` works
    /// (workspaces.rs). Returns whether it is watched now; false when all places are taken.
    /// The daemon resolves again (`take_changed`).
    pub fn add_workspace(&mut self, policy: &Policy, dir: &Path, uid: u32) -> bool {
        if !self.workspaces.add(dir) {
            return false;
        }
        log::info!("an agent works in {dir:?}: watching its secret files");
        self.sources.extend(workspaces::sources(dir, uid, policy));
        self.changed = true;
        true
    }

    /// No agent works in `dir` any more: its files are no longer looked for (those that are
    /// also another source's stay).
    pub fn remove_workspace(&mut self, dir: &Path) {
        if self.workspaces.remove(dir) {
            log::info!("no agent works in {dir:?} any more: no longer watching it");
            self.sources.retain(|s| s.workspace.as_deref() != Some(dir));
            self.changed = true;
        }
    }

    /// Whether sources changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Policy was reloaded: its credential paths replace the old policy's (for `homes`), and
    /// the other sources take their kind's new scope. The next `resolve` finds by them.
    pub fn reload_policy(&mut self, policy: &Policy, homes: &[PathBuf]) {
        self.sources.retain(|s| !s.from_policy);
        for source in &mut self.sources {
            source.scope = policy.kind_scope(source.kind);
        }
        self.sources.extend(Self::policy_sources(policy, homes));
        self.changed = true;
    }

    /// The policy's credential paths, `~/` taken as each of `homes`.
    pub fn policy_sources(policy: &Policy, homes: &[PathBuf]) -> Vec<Source> {
        let mut sources = Vec::new();
        for rule in policy.credentials.iter().map(|r| r.get_ref()) {
            let mut scope = policy.kind_scope(rule.kind);
            scope.extend(&rule.scope());
            let mut add = |pattern: String, home: Option<&PathBuf>| {
                sources.push(Source {
                    pattern,
                    kind: rule.kind,
                    context: rule.context.clone(),
                    scope: scope.clone(),
                    home: home.cloned(),
                    workspace: None,
                    owner: None,
                    from_policy: true,
                });
            };
            for path in &rule.paths {
                match path.strip_prefix("~/") {
                    Some(relative) => homes.iter().for_each(|home| {
                        add(home.join(relative).display().to_string(), Some(home))
                    }),
                    None => add(path.clone(), None),
                }
            }
        }
        sources
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Learns the secret in environment variable `name` (seen at exec, or in procfs at start):
    /// its fingerprint, and the credential it was first seen in when it is new.
    pub fn learn_variable(&mut self, name: &str, value: &str) -> Fingerprint {
        self.secrets.learn(value, Origin::Variable, |print| {
            env_credential_id(name, print)
        })
    }

    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    pub fn credentials(&self) -> impl Iterator<Item = &Credential> {
        self.credentials.values()
    }

    pub fn get(&self, file: &FileKey) -> Option<&Credential> {
        self.credentials.get(file)
    }

    /// The local tool servers of the MCP configurations found.
    pub fn tools(&self) -> &[ToolCommand] {
        &self.tools
    }

    /// The credential (a file's, or an MCP server's) a secret with fingerprint `print` is in,
    /// the first found.
    pub fn credential_by_print(&self, print: Fingerprint) -> Option<&Arc<CredentialRef>> {
        self.by_print.get(&print)
    }

    /// The tool server credential whose secret has fingerprint `print`, if any.
    pub fn tool_secret(&self, print: Fingerprint) -> Option<&Arc<CredentialRef>> {
        self.tool_secrets.get(&print)
    }

    /// Looks at the filesystem again; returns which identities appeared and disappeared.
    /// The first source to name a file gives its kind and path, except that a system path (or
    /// `--watch`) wins over a home: a user cannot make a system credential another kind by
    /// linking it into their home.
    pub fn resolve(&mut self, policy: &Policy) -> Changes {
        // Each credential found, and whether a home source found it.
        let mut found: BTreeMap<FileKey, (Credential, bool)> = BTreeMap::new();
        // Files found in each agent workspace (bounded: workspaces.rs).
        let mut in_workspace: BTreeMap<&Path, usize> = BTreeMap::new();
        self.refused.clear();
        for source in &self.sources {
            let cap = source.glob_cap();
            let (paths, more) = expand(&source.pattern, cap);
            if more && self.capped.insert(source.pattern.clone()) {
                log::warn!(
                    "{} matches more than {cap} files: only the first {cap} are watched (one \
                     pattern cannot fill the kernel's watch map)",
                    source.pattern
                );
            }
            for path in paths {
                if let Some(dir) = source.workspace.as_deref() {
                    let count = in_workspace.entry(dir).or_default();
                    if *count >= workspaces::MAX_FILES {
                        if self.capped.insert(dir.display().to_string()) {
                            log::warn!(
                                "agent workspace {dir:?} holds more than {} secret-looking \
                                 files: only the first are watched",
                                workspaces::MAX_FILES
                            );
                        }
                        break;
                    }
                }
                match identify::identify(&path, source, policy, &mut self.secrets) {
                    Ok(credential) => {
                        if let Some(dir) = source.workspace.as_deref() {
                            *in_workspace.entry(dir).or_default() += 1;
                        }
                        let from_home = source.home.is_some();
                        match found.entry(credential.file) {
                            Entry::Vacant(slot) => {
                                slot.insert((credential, from_home));
                            }
                            Entry::Occupied(mut first) if first.get().1 && !from_home => {
                                say_collision(&mut self.collisions, &first.get().0, &credential);
                                first.insert((credential, from_home));
                            }
                            Entry::Occupied(first) => {
                                say_collision(&mut self.collisions, &credential, &first.get().0);
                            }
                        }
                    }
                    Err(open::Refusal::Missing) => {}
                    Err(why) => {
                        // Said once per path: a user churning files in a watched directory
                        // must not flood the log with the same line on every resolve.
                        if self.said_refused.len() < MAX_SAID_REFUSED
                            && self.said_refused.insert(path.clone())
                        {
                            log::warn!("not watching {} as a credential: {why}", path.display());
                        }
                        self.refused.push(path);
                    }
                }
            }
        }
        let before: BTreeSet<FileKey> = self.credentials.keys().copied().collect();
        let after: BTreeSet<FileKey> = found.keys().copied().collect();
        self.credentials = found.into_iter().map(|(k, (c, _))| (k, c)).collect();
        self.tools = self
            .credentials
            .values()
            .flat_map(|c| c.tools.iter().cloned())
            .collect();
        // A tool's own credential first (a server's token in an MCP configuration is the
        // tool's), then the files'.
        self.by_print.clear();
        let records = self.credentials.values().map(|c| &c.record);
        for record in records.clone().flat_map(|r| r.parts.iter()).chain(records) {
            for print in &record.fingerprints {
                self.by_print
                    .entry(*print)
                    .or_insert_with(|| Arc::clone(record));
            }
        }
        // The first tool a secret is given to keeps it (the order the catalog found them).
        self.tool_secrets.clear();
        for part in self
            .credentials
            .values()
            .flat_map(|c| c.record.parts.iter())
        {
            if let Some(print) = part.fingerprint {
                self.tool_secrets
                    .entry(print)
                    .or_insert_with(|| Arc::clone(part));
            }
        }
        Changes {
            added: after.difference(&before).copied().collect(),
            removed: before.difference(&after).copied().collect(),
        }
    }

    /// Directories to watch for credentials appearing: for each source, the nearest existing
    /// directory above its first glob or file name, and, where directories in the pattern are
    /// globs, every existing directory they match (a new pod's token on a Kubernetes node is
    /// four directories below the one that exists: `pods/*/volumes/kubernetes.io~projected/*/token`;
    /// and kubelet rotates it by renaming a link in the last of them).
    pub fn directories_to_watch(&self) -> BTreeSet<PathBuf> {
        let mut dirs = BTreeSet::new();
        for source in &self.sources {
            let fixed = source
                .pattern
                .split(['*', '?', '['])
                .next()
                .unwrap_or_default();
            // `/pods/*/token`: the glob is a whole name, in `/pods` itself.
            let mut dir = if fixed.ends_with('/') {
                Some(Path::new(fixed))
            } else {
                Path::new(fixed).parent()
            };
            while let Some(d) = dir {
                if d.is_dir() {
                    dirs.insert(d.to_path_buf());
                    break;
                }
                dir = d.parent();
            }
            let cap = source.glob_cap();
            for prefix in globbed_directories(&source.pattern) {
                let (matched, _) = expand(&prefix, cap);
                // Real directories only: a link a user made in a globbed directory must not
                // get a watch on wherever it points.
                dirs.extend(
                    matched
                        .into_iter()
                        .filter(|d| fs::symlink_metadata(d).is_ok_and(|m| m.is_dir())),
                );
            }
        }
        dirs
    }

    /// The files whose owner changes matter: the credentials, and the files refused for their
    /// owner or type.
    pub fn files_to_watch(&self) -> impl Iterator<Item = &Path> {
        self.credentials
            .values()
            .map(|c| c.path.as_path())
            .chain(self.refused.iter().map(PathBuf::as_path))
    }

    pub fn needs_open_hook(&self) -> bool {
        self.credentials.values().any(|c| !c.page_cache)
    }
}

/// Files one pattern may match (in one home: patterns are per home): a user who makes 100,000
/// files named like keys fills only their own share of the kernel's watch map (16,384).
const MAX_GLOB_MATCHES: usize = 64;
/// Refused paths said in the log, at most: past it, refusals are kept quiet.
const MAX_SAID_REFUSED: usize = 4096;
/// Files one system pattern of the policy (outside homes and workspaces) may match: a
/// Kubernetes node runs up to 110 pods by default, each with its token. `--watch` patterns,
/// which may name directories users write to, keep `MAX_GLOB_MATCHES`.
const MAX_SYSTEM_GLOB_MATCHES: usize = 1024;

impl Source {
    /// How many files its pattern may match.
    fn glob_cap(&self) -> usize {
        if self.from_policy && self.home.is_none() && self.workspace.is_none() {
            MAX_SYSTEM_GLOB_MATCHES
        } else {
            MAX_GLOB_MATCHES
        }
    }
}

/// The files `pattern` names, at most `cap`, and whether it named more.
fn expand(pattern: &str, cap: usize) -> (Vec<PathBuf>, bool) {
    if !pattern.contains(['*', '?', '[']) {
        return (vec![PathBuf::from(pattern)], false);
    }
    let Ok(paths) = glob::glob(pattern) else {
        return (Vec::new(), false);
    };
    let mut paths: Vec<PathBuf> = paths.filter_map(Result::ok).take(cap + 1).collect();
    let more = paths.len() > cap;
    paths.truncate(cap);
    (paths, more)
}

/// The directory prefixes of `pattern` (its file name aside) from the first whose name is a
/// glob on: `/a/*/b/*/f` gives `/a/*`, `/a/*/b`, `/a/*/b/*`.
fn globbed_directories(pattern: &str) -> Vec<String> {
    let Some((directory, _file)) = pattern.rsplit_once('/') else {
        return Vec::new();
    };
    let mut prefixes = Vec::new();
    let mut prefix = String::new();
    let mut globbed = false;
    for component in directory.split('/').filter(|c| !c.is_empty()) {
        prefix.push('/');
        prefix.push_str(component);
        globbed |= component.contains(['*', '?', '[']);
        if globbed {
            prefixes.push(prefix.clone());
        }
    }
    prefixes
}

/// Says once that `lost` is the same file as `kept`, whose path and kind count, when their
/// kinds differ.
fn say_collision(said: &mut BTreeSet<PathBuf>, lost: &Credential, kept: &Credential) {
    if lost.record.kind != kept.record.kind && said.insert(lost.path.clone()) {
        log::info!(
            "{} is the same file as {}: watched as {} ({}), not as {}",
            lost.path.display(),
            kept.path.display(),
            kept.path.display(),
            kept.record.kind,
            lost.record.kind
        );
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::MetadataExt};

    use super::*;

    fn default_catalog(home: &Path) -> Catalog {
        let policy = Policy::embedded();
        Catalog::new(
            Catalog::policy_sources(&policy, &[home.to_path_buf()]),
            Secrets::new(crate::fingerprint::Fingerprinter::with_key(1)),
        )
    }

    fn scratch(name: &str) -> PathBuf {
        crate::testing::scratch_dir(&format!("catalog-{name}"))
    }

    #[test]
    fn one_home_cannot_fill_the_watch_map_with_files_named_like_keys() {
        let home = scratch("many-keys");
        fs::create_dir_all(home.join("keys")).unwrap();
        for i in 0..MAX_GLOB_MATCHES + 40 {
            fs::write(
                home.join(format!("keys/k{i:04}")),
                format!("key-bytes-{i:06}"),
            )
            .unwrap();
        }
        let policy = Policy::embedded();
        let pattern = format!("{}/keys/*", home.display());
        let mut source = Source::watched(pattern, Kind::Generic, &policy);
        source.home = Some(home.clone());
        let mut catalog = Catalog::new(
            vec![source],
            Secrets::new(crate::fingerprint::Fingerprinter::with_key(1)),
        );
        catalog.resolve(&policy);
        assert_eq!(catalog.credentials().count(), MAX_GLOB_MATCHES);
        assert_eq!(catalog.capped.len(), 1);
    }

    #[test]
    fn globbed_directories_are_the_prefixes_from_the_first_glob() {
        assert_eq!(
            globbed_directories("/var/lib/kubelet/pods/*/volumes/kubernetes.io~projected/*/token"),
            [
                "/var/lib/kubelet/pods/*",
                "/var/lib/kubelet/pods/*/volumes",
                "/var/lib/kubelet/pods/*/volumes/kubernetes.io~projected",
                "/var/lib/kubelet/pods/*/volumes/kubernetes.io~projected/*",
            ]
        );
        assert!(globbed_directories("/etc/keys/*.pem").is_empty());
        assert!(globbed_directories("/root/.netrc").is_empty());
    }

    /// A pod's token, as kubelet's atomic writer lays it out: the file in a timestamped
    /// directory, `..data` a link to that directory, `token` a link through `..data`.
    fn pod_token(pods: &Path, pod: &str, stamp: &str, secret: &str) -> PathBuf {
        let volume = pods
            .join(pod)
            .join("volumes/kubernetes.io~projected/kube-api-access-x");
        fs::create_dir_all(volume.join(stamp)).unwrap();
        fs::write(volume.join(stamp).join("token"), secret).unwrap();
        let data_tmp = volume.join("..data_tmp");
        std::os::unix::fs::symlink(stamp, &data_tmp).unwrap();
        fs::rename(&data_tmp, volume.join("..data")).unwrap();
        let token = volume.join("token");
        if fs::symlink_metadata(&token).is_err() {
            std::os::unix::fs::symlink("..data/token", &token).unwrap();
        }
        token
    }

    #[test]
    fn pod_tokens_are_found_and_their_directories_watched_to_the_last() {
        let pods = scratch("kubelet-pods");
        let policy = Policy::embedded();
        let pattern = format!(
            "{}/*/volumes/kubernetes.io~projected/*/token",
            pods.display()
        );
        let mut catalog = Catalog::new(
            vec![Source::watched(pattern, Kind::Kube, &policy)],
            Secrets::new(crate::fingerprint::Fingerprinter::with_key(1)),
        );
        let token = pod_token(
            &pods,
            "pod-a",
            "..2026_12_02_10_00_00.1",
            "eyJhbGciOiJSUzI1NiJ9.a.b",
        );
        catalog.resolve(&policy);
        assert_eq!(catalog.credentials().count(), 1);
        let dirs = catalog.directories_to_watch();
        for dir in [
            pods.clone(),
            pods.join("pod-a"),
            pods.join("pod-a/volumes/kubernetes.io~projected/kube-api-access-x"),
        ] {
            assert!(dirs.contains(&dir), "{dir:?} not among {dirs:?}");
        }
        // Kubelet rotates it: a new file, the link swapped. A new identity, the same path.
        let before = catalog.credentials().next().unwrap().file;
        pod_token(
            &pods,
            "pod-a",
            "..2026_12_02_11_00_00.2",
            "eyJhbGciOiJSUzI1NiJ9.c.d",
        );
        let changes = catalog.resolve(&policy);
        assert_eq!(changes.removed, vec![before]);
        assert_eq!(catalog.credentials().next().unwrap().path, token);
        fs::remove_dir_all(pods).unwrap();
    }

    #[test]
    fn resolves_builtin_patterns_under_a_home_by_identity() {
        let home = scratch("home");
        fs::create_dir_all(home.join(".ssh")).unwrap();
        fs::write(home.join(".netrc"), "machine example.com").unwrap();
        fs::write(home.join(".ssh/id_ed25519"), "private-key-bytes").unwrap();
        fs::write(home.join(".ssh/id_ed25519.pub"), "public").unwrap();
        let mut catalog = default_catalog(&home);
        let changes = catalog.resolve(&Policy::embedded());
        assert_eq!(
            changes.added.len(),
            2,
            "netrc and the private key, not the .pub"
        );
        let kinds: BTreeSet<Kind> = catalog.credentials().map(|c| c.record.kind).collect();
        assert_eq!(kinds, BTreeSet::from([Kind::Netrc, Kind::Ssh]));
        let netrc_meta = fs::metadata(home.join(".netrc")).unwrap();
        let key = FileKey::new(kernel_dev(netrc_meta.dev()), netrc_meta.ino());
        assert_eq!(
            catalog.get(&key).unwrap().record.id,
            format!("netrc:{}/.netrc", home.display())
        );
        let netrc = catalog.get(&key).unwrap();
        assert_eq!(
            netrc.record.scope.check(None, 443, Some("example.com")),
            crate::policy::Verdict::Inside,
            "the host the file names is in its scope"
        );
        assert!(netrc.fingerprints.is_empty(), "it holds no password");
        let key_file = catalog
            .credentials()
            .find(|c| c.record.kind == Kind::Ssh)
            .unwrap();
        assert_eq!(key_file.fingerprints.len(), 1);
        assert!(catalog.directories_to_watch().contains(&home.join(".ssh")));
        fs::remove_dir_all(home).unwrap();
    }

    #[test]
    fn a_replaced_file_is_a_new_identity_with_the_same_id() {
        let home = scratch("replace");
        fs::write(home.join(".netrc"), "one").unwrap();
        let mut catalog = default_catalog(&home);
        catalog.resolve(&Policy::embedded());
        let old = catalog.credentials().next().unwrap().clone();
        fs::write(home.join(".netrc.tmp"), "two").unwrap();
        fs::rename(home.join(".netrc.tmp"), home.join(".netrc")).unwrap();
        let changes = catalog.resolve(&Policy::embedded());
        assert_eq!(changes.removed, vec![old.file]);
        assert_eq!(changes.added.len(), 1);
        assert_eq!(
            catalog.get(&changes.added[0]).unwrap().record.id,
            old.record.id
        );
        fs::remove_dir_all(home).unwrap();
    }

    /// A system credential linked into a home keeps its system kind and path, whichever
    /// source names it first.
    #[test]
    fn a_system_path_wins_over_a_home_for_the_same_file() {
        let root = scratch("collision");
        let home = root.join("home");
        fs::create_dir_all(home.join(".aws")).unwrap();
        fs::write(root.join("admin.conf"), "token: kube-admin-token\n").unwrap();
        fs::hard_link(root.join("admin.conf"), home.join(".aws/credentials")).unwrap();
        let policy = Policy::embedded();
        let in_home = Source {
            home: Some(home.clone()),
            ..Source::watched(
                home.join(".aws/credentials").display().to_string(),
                Kind::Aws,
                &policy,
            )
        };
        let system = Source::watched(
            root.join("admin.conf").display().to_string(),
            Kind::Kube,
            &policy,
        );
        let mut catalog = Catalog::new(
            vec![in_home, system],
            Secrets::new(crate::fingerprint::Fingerprinter::with_key(1)),
        );
        catalog.resolve(&policy);
        let found: Vec<_> = catalog.credentials().collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].record.kind, Kind::Kube);
        assert_eq!(found[0].path, root.join("admin.conf"));
        assert!(catalog.collisions.contains(&home.join(".aws/credentials")));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn kernel_device_encoding_matches_the_kernel() {
        // /dev/vda1 style: major 254, minor 1 -> glibc makedev -> kernel (major << 20 | minor).
        let dev = libc::makedev(254, 1);
        assert_eq!(kernel_dev(dev), (254 << 20) | 1);
    }
}
