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
    AddrKey, FileKey, MAX_SLOTS, NameKey, SLOT_PORTS, SlotPorts, enforce_mode, name_hash,
};

use crate::policy::{Cidr, Scope};

/// One credential as enforcement sees it.
pub struct Candidate<'a> {
    pub file: FileKey,
    pub path: &'a str,
    pub scope: &'a Scope,
    /// Its policy says `deny`.
    pub deny: bool,
}

/// What the kernel is to enforce.
#[derive(Debug, Default)]
pub struct Plan {
    /// The scopes, by slot.
    pub slots: Vec<Scope>,
    /// The watched map's value for each credential file: its slot + 1, or 0.
    pub values: Vec<(FileKey, u32)>,
    /// Credentials whose policy says `deny` that are not enforced, and why.
    pub skipped: Vec<(String, String)>,
    /// Credentials enforced.
    pub enforced: usize,
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

fn name_key(pattern: &NamePattern) -> Option<NameKey> {
    let (name, suffix) = match pattern {
        NamePattern::Exact(n) => (n, 0),
        NamePattern::Below(n) => (n, 1),
        NamePattern::Any => return None,
    };
    Some(NameKey {
        hash: name_hash(&wire(name)),
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

/// Works out the slots from the catalog's credentials.
pub fn plan<'a>(credentials: impl IntoIterator<Item = Candidate<'a>>) -> Plan {
    let mut plan = Plan::default();
    for c in credentials {
        if !c.deny {
            plan.values.push((c.file, 0));
            continue;
        }
        if let Some(glob) = c
            .scope
            .hosts
            .iter()
            .find(|g| name_pattern(g.as_str()).is_none())
        {
            plan.skipped.push((
                c.path.to_owned(),
                format!(
                    "its scope's host `{}` is neither a name nor `*.name`",
                    glob.as_str()
                ),
            ));
            plan.values.push((c.file, 0));
            continue;
        }
        let slot = match plan.slots.iter().position(|s| s == c.scope) {
            Some(slot) => slot,
            None if plan.slots.len() < MAX_SLOTS as usize => {
                plan.slots.push(c.scope.clone());
                plan.slots.len() - 1
            }
            None => {
                plan.skipped.push((
                    c.path.to_owned(),
                    format!("more than {MAX_SLOTS} distinct scopes are enforced"),
                ));
                plan.values.push((c.file, 0));
                continue;
            }
        };
        plan.enforced += 1;
        plan.values.push((c.file, slot as u32 + 1));
    }
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
    /// turns enforcement off.
    pub fn install(
        &mut self,
        plan: &Plan,
        mode: u32,
        installed: &mut Installed,
    ) -> Result<(), MapError> {
        let mut any = 0u64;
        let mut cidrs: BTreeMap<String, (Cidr, u64)> = BTreeMap::new();
        let mut names: BTreeMap<(u64, u32), u64> = BTreeMap::new();
        for (slot, scope) in plan.slots.iter().enumerate() {
            let bit = 1u64 << slot;
            let mut ports = SlotPorts::default();
            if scope.ports.len() <= SLOT_PORTS {
                ports.count = scope.ports.len() as u32;
                ports.ports[..scope.ports.len()].copy_from_slice(&scope.ports);
            }
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
                .filter_map(|p| name_key(&p))
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
        let mode = if plan.slots.is_empty() {
            enforce_mode::OFF
        } else {
            mode
        };
        self.mode.set(0, &mode, 0)
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

    /// Executables (by file identity) whose processes are never refused.
    pub fn exempt(&mut self, files: &[FileKey]) -> Result<(), MapError> {
        for file in files {
            self.exempt.insert(file, &1, 0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Glob;

    fn scope(hosts: &[&str], cidrs: &[&str], ports: &[u16]) -> Scope {
        Scope {
            hosts: hosts.iter().map(|h| Glob::new(h).unwrap()).collect(),
            cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
            ports: ports.to_vec(),
            allow_unnamed: false,
        }
    }

    #[test]
    fn credentials_with_one_scope_share_a_slot_and_patterns_the_kernel_cannot_match_are_skipped() {
        let aws = scope(&["*.amazonaws.com", "amazonaws.com"], &[], &[]);
        let github = scope(&["github.com"], &["140.82.112.0/20"], &[443]);
        let odd = scope(&["api-*.example.com"], &[], &[]);
        let file = |ino| FileKey::new(1, ino);
        let plan = plan([
            Candidate {
                file: file(1),
                path: "/home/a/.aws/credentials",
                scope: &aws,
                deny: true,
            },
            Candidate {
                file: file(2),
                path: "/home/b/.aws/credentials",
                scope: &aws,
                deny: true,
            },
            Candidate {
                file: file(3),
                path: "/home/a/.netrc",
                scope: &github,
                deny: true,
            },
            Candidate {
                file: file(4),
                path: "/etc/odd",
                scope: &odd,
                deny: true,
            },
            Candidate {
                file: file(5),
                path: "/home/a/.npmrc",
                scope: &aws,
                deny: false,
            },
        ]);
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
    }

    /// The kernel hashes a question's name as it reads it and derives each suffix's hash by
    /// arithmetic (scope_names.rs): the same arithmetic here must give the hashes the daemon
    /// installs, for the name and every name below it.
    #[test]
    fn suffix_hashes_the_kernel_derives_are_the_ones_installed() {
        let question = wire("Bucket.S3.us-east-1.AmazonAWS.com");
        // As the kernel: the hash before each label, then the whole name's.
        let (mut hash, mut before, mut starts) = (0u64, Vec::new(), Vec::new());
        let mut left = 0;
        for (pos, &b) in question.iter().enumerate() {
            if left == 0 {
                before.push(hash);
                starts.push(pos);
                left = b;
                hash = hash
                    .wrapping_mul(monitor_common::NAME_HASH_K)
                    .wrapping_add(u64::from(b));
            } else {
                let b = b.to_ascii_lowercase();
                hash = hash
                    .wrapping_mul(monitor_common::NAME_HASH_K)
                    .wrapping_add(u64::from(b));
                left -= 1;
            }
        }
        let end = question.len();
        let suffix = |i: usize| {
            let k =
                (0..end - starts[i]).fold(1u64, |p, _| p.wrapping_mul(monitor_common::NAME_HASH_K));
            hash.wrapping_sub(before[i].wrapping_mul(k))
        };
        let installed = |p: NamePattern| name_key(&p).unwrap().hash;
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
