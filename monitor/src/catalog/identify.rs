//! One file as a credential: opened as open.rs allows, read for its hosts and secrets (the
//! values go no further than `Secrets::learn`), and made into the record every later record
//! about it shares; an MCP configuration's servers each into a credential of their own.
use std::{fs, os::unix::fs::MetadataExt, path::Path, sync::Arc};

use monitor_common::FileKey;

use super::{
    Credential, Source,
    contents::{self, mcp::ToolServer},
    open, shape,
};
use crate::{
    fingerprint::Fingerprint,
    policy::Policy,
    record::CredentialRef,
    redact::{Origin, Secrets},
    vocab::Kind,
};

/// Credential files larger than this are fingerprinted on their first MiB only.
const MAX_READ: u64 = 1 << 20;

/// The credential at `path`, if it opens as open.rs allows. Its contents are read for hosts and
/// fingerprints; the secret values go no further than `secrets.learn`.
pub(super) fn identify(
    path: &Path,
    source: &Source,
    policy: &Policy,
    secrets: &mut Secrets,
) -> Result<Credential, open::Refusal> {
    let open::Opened { file, meta } = open::open_owned(path, source.home.as_deref(), source.owner)?;
    let kind = source.kind;
    let id = format!("{kind}:{}", path.display());
    let page_cache = uses_page_cache(&file);
    let mut bytes = Vec::new();
    {
        use std::io::Read;
        let _ = (&file).take(MAX_READ).read_to_end(&mut bytes);
    }
    let found = contents::inspect(kind, &String::from_utf8_lossy(&bytes));
    drop(bytes);
    if found.tools_dropped > 0 {
        log::warn!(
            "{path:?} names {} MCP servers more than keytrail reads ({}): their secrets are \
             not watched as tools'",
            found.tools_dropped,
            contents::mcp::MAX_SERVERS
        );
    }
    // Tool servers' secrets first: the credential a secret is first seen in is its identity.
    let parts: Vec<Arc<CredentialRef>> = found
        .tools
        .iter()
        .filter(|tool| !tool.secrets.is_empty())
        .map(|tool| tool_credential(path, tool, meta.uid(), policy, secrets))
        .collect();
    let facts = policy.credential_facts(kind, &path.display().to_string());
    let mut scope = source.scope.clone();
    scope.extend(&facts.scope);
    scope.add_hosts(found.hosts.iter().map(String::as_str));
    // The secrets first: the first is the credential's identity. Identifiers (an AWS access
    // key id) are known by fingerprint too, for proof of use, but not learned as secrets.
    let mut fingerprints: Vec<Fingerprint> = found
        .secrets
        .iter()
        .map(|s| secrets.learn(s, Origin::CredentialFile, |_| id.clone()))
        .collect();
    fingerprints.extend(found.identifiers.iter().map(|i| secrets.fingerprint(i)));
    let fingerprint = fingerprints.first().copied();
    let record = Arc::new(CredentialRef {
        identity: secrets.identity(&id, fingerprint),
        id,
        kind,
        path: path.display().to_string(),
        owner: Some(meta.uid()),
        context: source.context.clone().or(facts.context),
        scope,
        readers: facts.readers,
        fingerprint,
        fingerprints: fingerprints.clone(),
        lifetime: found.lifetime,
        parts,
    });
    Ok(Credential {
        path: path.to_path_buf(),
        file: FileKey::new(kernel_dev(meta.dev()), meta.ino()),
        page_cache,
        fingerprints,
        tools: found
            .tools
            .iter()
            .filter_map(|t| t.command(meta.uid()))
            .collect(),
        record,
    })
}

/// The credential of one MCP server's secrets: context `tool:<name>`, the kind its token's
/// shape says (else generic), scoped to the server's URL host and that kind's hosts.
fn tool_credential(
    path: &Path,
    tool: &ToolServer,
    owner: u32,
    policy: &Policy,
    secrets: &mut Secrets,
) -> Arc<CredentialRef> {
    let id = format!("mcp:{}#{}", path.display(), tool.name);
    let kind = tool
        .secrets
        .iter()
        .find_map(|s| shape::of(s).and_then(|(kind, _)| kind))
        .unwrap_or(Kind::Generic);
    let prints: Vec<Fingerprint> = tool
        .secrets
        .iter()
        .map(|s| secrets.learn(s, Origin::CredentialFile, |_| id.clone()))
        .collect();
    let fingerprint = prints.first().copied();
    let fingerprints = prints;
    let mut scope = policy.kind_scope(kind);
    scope.add_hosts(tool.host.iter().map(String::as_str));
    Arc::new(CredentialRef {
        identity: secrets.identity(&id, fingerprint),
        id,
        kind,
        path: path.display().to_string(),
        owner: Some(owner),
        context: Some(format!("tool:{}", tool.name)),
        scope,
        readers: Vec::new(),
        fingerprint,
        fingerprints,
        lifetime: shape::lifetime_of(&tool.secrets),
        parts: Vec::new(),
    })
}

/// The kernel's internal encoding of a device number (major << 20 | minor), which is what the
/// kernel programs see in `s_dev`; stat(2) returns glibc's encoding.
pub fn kernel_dev(dev: u64) -> u32 {
    (libc::major(dev) << 20) | libc::minor(dev)
}

/// Whether reads of `file` go through the page cache (not on tmpfs or ramfs).
fn uses_page_cache(file: &fs::File) -> bool {
    use std::os::unix::io::AsRawFd;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    // SAFETY: fstatfs writes into the zeroed struct we own; the descriptor is open.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) } != 0 {
        return true;
    }
    !matches!(stat.f_type as i64, TMPFS_MAGIC | RAMFS_MAGIC)
}
