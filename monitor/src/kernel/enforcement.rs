//! Enforcement's kernel maps, made from the catalog and the policy. The kernel programs do the
//! refusing (monitor-ebpf's enforce.rs and scope_names.rs); this says what to refuse.
//!
//! Each distinct scope of a credential whose policy says `action = "deny"` is a slot (at most
//! `MAX_SLOTS`; credentials with the same scope share one, so every user's ~/.aws/credentials
//! is one slot). The watched map's value of the credential's file is its slot + 1 (0: not
//! enforced), so a read marks the reader as holding that slot. A slot's scope goes to the
//! kernel as its ports, its address blocks (an LPM trie, each block carrying the slots of every
//! block around it, since a lookup returns the longest match only), and its host names by hash
//! (`github.com` exactly, `*.github.com` as a suffix; other patterns cannot be matched in the
//! kernel and leave the credential unenforced, said in the log).
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use aya::maps::{Array, HashMap, LpmTrie, MapData, MapError, lpm_trie::Key};
use monitor_common::{
    AddrKey, FileKey, MAX_SLOTS, NAME_HASH_POWERS, NameKey, SLOT_PORTS, SlotPorts, enforce_mode,
    name_hash,
};

use crate::policy::{Cidr, Scope};

/// One credential as enforcement sees it.
pub struct Candidate<'a> {
    pub file: FileKey,
    pub path: &'a str,
    pub scope: &'a Scope,
    /// Its file's owner: a user's own files may name hosts (a netrc's `machine`), so each user
    /// gets a share of the slots.
    pub owner: Option<u32>,
    /// Its policy says `deny`.
    pub deny: bool,
}

/// Distinct scopes one user's files may take (root's are not counted).
const SLOTS_PER_USER: usize = 8;
/// Host names, and address blocks, one scope may have in the kernel.
const NAMES_PER_SCOPE: usize = 64;

/// The scopes given slots so far in this run, by slot, with the user whose file brought each.
/// Slots are never renumbered or reused while keytrail runs: the kernel's holders and learned
/// addresses carry slot bits, which must keep their meaning.
#[derive(Default)]
pub struct Slots {
    scopes: Vec<(Scope, Option<u32>)>,
}

/// What the kernel is to enforce.
#[derive(Debug, Default)]
pub struct Plan {
    /// The scopes, by slot (every slot given in this run, used or not).
    pub slots: Vec<Scope>,
    /// The watched map's value for each credential file: its slot + 1, or 0.
    pub values: Vec<(FileKey, u32)>,
    /// Credentials whose policy says `deny` that are not enforced, and why.
    pub skipped: Vec<(String, String)>,
    /// Credentials enforced.
    pub enforced: usize,
    /// The slots some credential has now (a mask). A slot no credential has any more (policy
    /// reloaded: its credentials no longer refuse) lets anything through, so the processes that
    /// read them before are not held to the old scope.
    pub in_use: u64,
}

/// A host pattern as the kernel matches it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum NamePattern {
    /// The name itself.
    Exact(String),
    /// Any name below it (`*.name`).
    Below(String),
    /// Any name at all (`*`).
    Any,
}

/// How the kernel can match `glob`, if it can: a literal name, `*.` and a literal, or `*`.
fn name_pattern(glob: &str) -> Option<NamePattern> {
    let literal = |s: &str| {
        !s.is_empty() && !s.contains(['*', '?', '[', ']', '{', '}']) && !s.starts_with('.')
    };
    let glob = glob.trim_end_matches('.').to_ascii_lowercase();
    if glob == "*" {
        Some(NamePattern::Any)
    } else if let Some(rest) = glob.strip_prefix("*.") {
        literal(rest).then(|| NamePattern::Below(rest.to_owned()))
    } else {
        literal(&glob).then_some(NamePattern::Exact(glob))
    }
}

/// `name` in DNS wire form, without the final zero: each label after its length.
fn wire(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name.split('.') {
        out.push(label.len().min(63) as u8);
        out.extend(label.bytes().take(63));
    }
    out
}

fn name_key(pattern: &NamePattern, key: u64) -> Option<NameKey> {
    let (name, suffix) = match pattern {
        NamePattern::Exact(n) => (n, 0),
        NamePattern::Below(n) => (n, 1),
        NamePattern::Any => return None,
    };
    Some(NameKey {
        hash: name_hash(&wire(name), key),
        suffix,
        _pad: 0,
    })
}

/// Whether a slot with this scope lets a connect go to any address (its ports still count).
fn any_address(scope: &Scope) -> bool {
    (scope.hosts.is_empty() && scope.cidrs.is_empty())
        || (!scope.hosts.is_empty() && scope.allow_unnamed)
        || scope
            .hosts
            .iter()
            .any(|g| name_pattern(g.as_str()) == Some(NamePattern::Any))
}

/// Why a scope cannot be enforced in the kernel, if it cannot.
fn unenforceable(scope: &Scope) -> Option<String> {
    if let Some(glob) = scope
        .hosts
        .iter()
        .find(|g| name_pattern(g.as_str()).is_none())
    {
        return Some(format!(
            "its scope's host `{}` is neither a name nor `*.name`",
            glob.as_str()
        ));
    }
    if scope.hosts.len() > NAMES_PER_SCOPE || scope.cidrs.len() > NAMES_PER_SCOPE {
        return Some(format!(
            "its scope has more than {NAMES_PER_SCOPE} host names or address blocks"
        ));
    }
    if scope.ports.len() > SLOT_PORTS {
        return Some(format!("its scope has more than {SLOT_PORTS} ports"));
    }
    None
}

/// Works out the slots from the catalog's credentials; `slots` keeps the ones given before.
pub fn plan<'a>(slots: &mut Slots, credentials: impl IntoIterator<Item = Candidate<'a>>) -> Plan {
    let mut plan = Plan::default();
    for c in credentials {
        if !c.deny {
            plan.values.push((c.file, 0));
            continue;
        }
        if let Some(why) = unenforceable(c.scope) {
            plan.skipped.push((c.path.to_owned(), why));
            plan.values.push((c.file, 0));
            continue;
        }
        let user = c.owner.filter(|uid| *uid != 0);
        let slot = match slots.scopes.iter().position(|(s, _)| s == c.scope) {
            Some(slot) => slot,
            None if slots.scopes.len() >= MAX_SLOTS as usize => {
                plan.skipped.push((
                    c.path.to_owned(),
                    format!("more than {MAX_SLOTS} distinct scopes are enforced"),
                ));
                plan.values.push((c.file, 0));
                continue;
            }
            None if user.is_some()
                && slots.scopes.iter().filter(|(_, u)| *u == user).count() >= SLOTS_PER_USER =>
            {
                plan.skipped.push((
                    c.path.to_owned(),
                    format!("its owner's files already have {SLOTS_PER_USER} distinct scopes"),
                ));
                plan.values.push((c.file, 0));
                continue;
            }
            None => {
                slots.scopes.push((c.scope.clone(), user));
                slots.scopes.len() - 1
            }
        };
        plan.enforced += 1;
        plan.values.push((c.file, slot as u32 + 1));
    }
    plan.slots = slots.scopes.iter().map(|(s, _)| s.clone()).collect();
    plan.in_use = plan
        .values
        .iter()
        .filter(|(_, v)| *v != 0)
        .fold(0u64, |mask, (_, v)| mask | 1 << (v - 1));
    plan
}

/// An address block as enforcement's LPM tries key it.
fn cidr_key(cidr: &Cidr) -> Key<AddrKey> {
    let (family, addr, bits) = address(cidr.network());
    Key::new(
        32 + u32::from(cidr.prefix()).min(bits),
        AddrKey::new(family, addr),
    )
}

/// (family, address bytes as the kernel keys them, bits).
fn address(ip: IpAddr) -> (u16, [u8; 16], u32) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&v4.octets());
            (libc::AF_INET as u16, bytes, 32)
        }
        IpAddr::V6(v6) => (libc::AF_INET6 as u16, v6.octets(), 128),
    }
}

/// The kernel's enforcement maps.
pub struct EnforcementMaps {
    pub mode: Array<MapData, u32>,
    pub ports: Array<MapData, SlotPorts>,
    pub any_address: Array<MapData, u64>,
    pub cidrs: LpmTrie<MapData, AddrKey, u64>,
    pub names: HashMap<MapData, NameKey, u64>,
    pub resolvers: LpmTrie<MapData, AddrKey, u8>,
    pub exempt: HashMap<MapData, FileKey, u8>,
    /// Powers of the name hash's key, which is drawn at random by `draw_hash_key`.
    pub hash_powers: Array<MapData, u64>,
    pub hash_key: u64,
}

/// What is installed, to take out what a new plan no longer has.
#[derive(Default)]
pub struct Installed {
    cidrs: Vec<Cidr>,
    names: Vec<NameKey>,
    resolvers: Vec<Cidr>,
}

impl EnforcementMaps {
    /// Puts `plan` in the kernel, and `mode` (`enforce_mode::*`) last: a plan with no slots
    /// turns enforcement off, unless opens are refused (`refuses_reads`). Returns the mode set.
    pub fn install(
        &mut self,
        plan: &Plan,
        mode: u32,
        refuses_reads: bool,
        installed: &mut Installed,
    ) -> Result<u32, MapError> {
        let mut any = 0u64;
        let mut cidrs: BTreeMap<String, (Cidr, u64)> = BTreeMap::new();
        let mut names: BTreeMap<(u64, u32), u64> = BTreeMap::new();
        for (slot, scope) in plan.slots.iter().enumerate() {
            let bit = 1u64 << slot;
            if plan.in_use & bit == 0 {
                self.ports.set(slot as u32, &SlotPorts::default(), 0)?;
                any |= bit;
                continue;
            }
            let mut ports = SlotPorts::default();
            let listed = scope.ports.len().min(SLOT_PORTS);
            ports.count = listed as u32;
            ports.ports[..listed].copy_from_slice(&scope.ports[..listed]);
            self.ports.set(slot as u32, &ports, 0)?;
            if any_address(scope) {
                any |= bit;
            }
            for cidr in &scope.cidrs {
                cidrs.entry(cidr.to_string()).or_insert((*cidr, 0)).1 |= bit;
            }
            for key in scope
                .hosts
                .iter()
                .filter_map(|g| name_pattern(g.as_str()))
                .filter_map(|p| name_key(&p, self.hash_key))
            {
                *names.entry((key.hash, key.suffix)).or_default() |= bit;
            }
        }
        // A lookup finds the longest block only: each block carries the slots of the blocks
        // around it too.
        let blocks: Vec<(Cidr, u64)> = cidrs.values().copied().collect();
        let folded: Vec<(Cidr, u64)> = blocks
            .iter()
            .map(|(inner, _)| {
                let mask = blocks
                    .iter()
                    .filter(|(outer, _)| {
                        outer.prefix() <= inner.prefix() && outer.contains(inner.network())
                    })
                    .fold(0, |m, (_, bits)| m | bits);
                (*inner, mask)
            })
            .collect();
        for old in installed.cidrs.drain(..) {
            if !folded.iter().any(|(c, _)| *c == old) {
                let _ = self.cidrs.remove(&cidr_key(&old));
            }
        }
        for (cidr, mask) in &folded {
            self.cidrs.insert(&cidr_key(cidr), mask, 0)?;
            installed.cidrs.push(*cidr);
        }
        let keys: BTreeSet<(u64, u32)> = names.keys().copied().collect();
        for old in installed.names.drain(..) {
            if !keys.contains(&(old.hash, old.suffix)) {
                let _ = self.names.remove(&old);
            }
        }
        for ((hash, suffix), mask) in names {
            let key = NameKey {
                hash,
                suffix,
                _pad: 0,
            };
            self.names.insert(&key, &mask, 0)?;
            installed.names.push(key);
        }
        self.any_address.set(0, &any, 0)?;
        let mode = if plan.in_use == 0 && !refuses_reads {
            enforce_mode::OFF
        } else {
            mode
        };
        self.mode.set(0, &mode, 0)?;
        Ok(mode)
    }

    /// Draws the name hash's key (odd, from the kernel's random source) and gives the kernel
    /// its powers. Before any name is installed.
    pub fn draw_hash_key(&mut self) -> Result<(), String> {
        let mut bytes = [0u8; 8];
        // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer.
        let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        if got != bytes.len() as isize {
            return Err(format!("getrandom: {}", std::io::Error::last_os_error()));
        }
        self.hash_key = u64::from_ne_bytes(bytes) | 1;
        let mut power = 1u64;
        for i in 0..NAME_HASH_POWERS {
            self.hash_powers
                .set(i, &power, 0)
                .map_err(|e| e.to_string())?;
            power = power.wrapping_mul(self.hash_key);
        }
        Ok(())
    }

    /// The resolvers whose answers teach the kernel a scope name's addresses.
    pub fn trust_resolvers(
        &mut self,
        blocks: &[Cidr],
        installed: &mut Installed,
    ) -> Result<(), MapError> {
        for old in installed.resolvers.drain(..) {
            if !blocks.contains(&old) {
                let _ = self.resolvers.remove(&cidr_key(&old));
            }
        }
        for block in blocks {
            self.resolvers.insert(&cidr_key(block), &1, 0)?;
            installed.resolvers.push(*block);
        }
        Ok(())
    }

    /// Executables (by file identity) whose processes are never refused: these, and no
    /// others (new ones first, then those gone).
    pub fn exempt(&mut self, files: &[FileKey]) -> Result<(), MapError> {
        for file in files {
            self.exempt.insert(file, &1, 0)?;
        }
        let gone: Vec<FileKey> = self
            .exempt
            .keys()
            .flatten()
            .filter(|k| !files.contains(k))
            .collect();
        for file in gone {
            let _ = self.exempt.remove(&file);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::scope::scope;

    #[test]
    fn credentials_with_one_scope_share_a_slot_and_patterns_the_kernel_cannot_match_are_skipped() {
        let aws = scope(&["*.amazonaws.com", "amazonaws.com"], &[], &[]);
        let github = scope(&["github.com"], &["140.82.112.0/20"], &[443]);
        let odd = scope(&["api-*.example.com"], &[], &[]);
        let file = |ino| FileKey::new(1, ino);
        let candidate = |ino, scope, deny| Candidate {
            file: file(ino),
            path: "/home/a/f",
            scope,
            owner: Some(1000),
            deny,
        };
        let mut slots = Slots::default();
        let plan = plan(
            &mut slots,
            [
                candidate(1, &aws, true),
                candidate(2, &aws, true),
                candidate(3, &github, true),
                candidate(4, &odd, true),
                candidate(5, &aws, false),
            ],
        );
        assert_eq!(plan.slots.len(), 2);
        assert_eq!(
            plan.values,
            [
                (file(1), 1),
                (file(2), 1),
                (file(3), 2),
                (file(4), 0),
                (file(5), 0)
            ]
        );
        assert_eq!(plan.enforced, 3);
        assert_eq!(plan.skipped.len(), 1);
        assert!(plan.skipped[0].1.contains("api-*.example.com"));

        // A later plan keeps the slots given before, whatever comes first now: the kernel's
        // holders carry slot bits.
        let plan = plan_again(
            &mut slots,
            [candidate(3, &github, true), candidate(1, &aws, true)],
        );
        assert_eq!(plan.values, [(file(3), 2), (file(1), 1)]);
    }

    fn plan_again<'a>(slots: &mut Slots, c: impl IntoIterator<Item = Candidate<'a>>) -> Plan {
        plan(slots, c)
    }

    #[test]
    fn one_user_cannot_take_every_slot() {
        let scopes: Vec<Scope> = (0..20)
            .map(|i| scope(&[&format!("h{i}.example")], &[], &[]))
            .collect();
        let mut slots = Slots::default();
        let plan = plan(
            &mut slots,
            scopes.iter().enumerate().map(|(i, s)| Candidate {
                file: FileKey::new(1, i as u64),
                path: "/home/a/.netrc",
                scope: s,
                owner: Some(1000),
                deny: true,
            }),
        );
        assert_eq!(plan.enforced, SLOTS_PER_USER);
        assert_eq!(plan.skipped.len(), 20 - SLOTS_PER_USER);
        // Root's are not counted against anyone.
        let plan = plan_again(
            &mut slots,
            [Candidate {
                file: FileKey::new(2, 1),
                path: "/root/.netrc",
                scope: &scopes[19],
                owner: Some(0),
                deny: true,
            }],
        );
        assert_eq!(plan.enforced, 1);
    }

    /// The kernel hashes a question's name as it reads it and derives each suffix's hash by
    /// arithmetic (scope_names.rs): the same arithmetic here must give the hashes the daemon
    /// installs, for the name and every name below it.
    #[test]
    fn suffix_hashes_the_kernel_derives_are_the_ones_installed() {
        const KEY: u64 = 0x9e37_79b9_7f4a_7c15;
        let question = wire("Bucket.S3.us-east-1.AmazonAWS.com");
        // As the kernel: the hash before each label, then the whole name's.
        let (mut hash, mut before, mut starts) = (0u64, Vec::new(), Vec::new());
        let mut left = 0;
        for (pos, &b) in question.iter().enumerate() {
            if left == 0 {
                before.push(hash);
                starts.push(pos);
                left = b;
                hash = hash.wrapping_mul(KEY).wrapping_add(u64::from(b));
            } else {
                let b = b.to_ascii_lowercase();
                hash = hash.wrapping_mul(KEY).wrapping_add(u64::from(b));
                left -= 1;
            }
        }
        let end = question.len();
        let suffix = |i: usize| {
            let k = (0..end - starts[i]).fold(1u64, |p, _| p.wrapping_mul(KEY));
            hash.wrapping_sub(before[i].wrapping_mul(k))
        };
        let installed = |p: NamePattern| name_key(&p, KEY).unwrap().hash;
        assert_eq!(
            hash,
            installed(NamePattern::Exact(
                "bucket.s3.us-east-1.amazonaws.com".into()
            ))
        );
        assert_eq!(
            suffix(3),
            installed(NamePattern::Below("amazonaws.com".into()))
        );
        assert_eq!(
            suffix(1),
            installed(NamePattern::Below("s3.us-east-1.amazonaws.com".into()))
        );
        assert_ne!(
            suffix(2),
            installed(NamePattern::Below("amazonaws.com".into()))
        );
    }

    #[test]
    fn name_patterns() {
        assert_eq!(
            name_pattern("GitHub.com."),
            Some(NamePattern::Exact("github.com".into()))
        );
        assert_eq!(
            name_pattern("*.github.com"),
            Some(NamePattern::Below("github.com".into()))
        );
        assert_eq!(name_pattern("*"), Some(NamePattern::Any));
        assert_eq!(name_pattern("api-*.example.com"), None);
        assert_eq!(name_pattern("*.*.example.com"), None);
        assert!(any_address(&scope(&[], &[], &[443])));
        assert!(!any_address(&scope(&["github.com"], &[], &[])));
        assert!(!any_address(&scope(&[], &["10.0.0.0/8"], &[])));
    }
}
