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
use std::{collections::BTreeMap, net::IpAddr};

use aya::maps::{Array, HashMap, LpmTrie, MapData, MapError, lpm_trie::Key};
use monitor_common::{
    AddrKey, ContextLabel, FileKey, MAX_SLOTS, NAME_HASH_POWERS, NameKey, PlanMasks, ProcContext,
    SLOT_PORTS, SlotPorts, enforce_mode, label_hash, name_hash,
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
    /// Its policy says `deny` of its connects outside its scope.
    pub deny: bool,
    /// Its policy says `deny` of its use in another context (`cross-context-reuse`).
    pub deny_context: bool,
    /// The context that owns it, if policy gives it one.
    pub context: Option<&'a str>,
    /// That context is one the kernel can know: a label (not a `[[contexts]]` rule's or a
    /// tool's).
    pub context_by_label: bool,
}

/// A slot: credentials with one scope and one owning context. What it refuses (connects
/// outside its scope, use in another context) is the plan's, from the credentials that have
/// it now (`Plan::scoped`, `Plan::contexts`), so a reload that changes an action takes no new
/// slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    pub scope: Scope,
    /// The owning context, where the kernel can know it (a label).
    pub owner: Option<String>,
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
    scopes: Vec<(Slot, Option<u32>)>,
}

/// What the kernel is to enforce.
#[derive(Debug, Default)]
pub struct Plan {
    /// The slots (every slot given in this run, used or not).
    pub slots: Vec<Slot>,
    /// The watched map's value for each credential file: its slot + 1, or 0.
    pub values: Vec<(FileKey, u32)>,
    /// Credentials whose policy says `deny` that are not enforced, and why.
    pub skipped: Vec<(String, String)>,
    /// Credentials whose scope is enforced but whose use in another context is only
    /// reported, and why.
    pub context_reported: Vec<(String, String)>,
    /// Credentials enforced.
    pub enforced: usize,
    /// The slots some credential has now (a mask). A slot no credential has any more (policy
    /// reloaded: its credentials no longer refuse) lets anything through, so the processes that
    /// read them before are not held to the old scope.
    pub in_use: u64,
    /// The slots one of whose credentials refuses connects outside its scope, and those one of
    /// whose credentials refuses use in another context.
    pub scoped: u64,
    pub contexts: u64,
}

impl Plan {
    /// Whether some credential in use refuses its reads to other contexts than its owner's
    /// (readers.rs in the kernel, where BPF LSM runs).
    pub fn refuses_reads_by_owner(&self) -> bool {
        self.slots.iter().enumerate().any(|(slot, s)| {
            let bit = 1u64 << slot;
            s.owner.is_some() && self.contexts & self.in_use & bit != 0
        })
    }
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
        let mut refuses_context = c.deny_context;
        if refuses_context && !c.context_by_label {
            refuses_context = false;
            let owner = c.context.unwrap_or_default();
            plan.context_reported.push((
                c.path.to_owned(),
                format!("it belongs to context {owner}, which the kernel knows only by label"),
            ));
        }
        if !c.deny && !refuses_context {
            plan.values.push((c.file, 0));
            continue;
        }
        if let Some(why) = unenforceable(c.scope) {
            plan.skipped.push((c.path.to_owned(), why));
            plan.values.push((c.file, 0));
            continue;
        }
        let wanted = Slot {
            scope: c.scope.clone(),
            owner: c.context.filter(|_| c.context_by_label).map(str::to_owned),
        };
        let user = c.owner.filter(|uid| *uid != 0);
        let slot = match slots.scopes.iter().position(|(s, _)| *s == wanted) {
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
                slots.scopes.push((wanted, user));
                slots.scopes.len() - 1
            }
        };
        plan.enforced += 1;
        plan.values.push((c.file, slot as u32 + 1));
        if c.deny {
            plan.scoped |= 1 << slot;
        }
        if refuses_context {
            plan.contexts |= 1 << slot;
        }
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
    /// What is refused, in two generations, and which one is in force (see `PlanMasks`).
    pub plan: Array<MapData, PlanMasks>,
    pub generation: Array<MapData, u32>,
    /// The generation in force.
    pub active: u32,
    pub ports: Array<MapData, SlotPorts>,
    pub any_address: Array<MapData, u64>,
    pub cidrs: LpmTrie<MapData, AddrKey, u64>,
    pub names: HashMap<MapData, NameKey, u64>,
    pub resolvers: LpmTrie<MapData, AddrKey, u8>,
    pub exempt: HashMap<MapData, FileKey, u8>,
    /// The slots each owning context (by label hash) owns.
    pub owners: HashMap<MapData, u64, u64>,
    /// The label variable the kernel looks for at exec.
    pub context_label: Array<MapData, ContextLabel>,
    /// Processes' contexts, by tgid (the kernel's from each exec on; seeded at start).
    pub contexts: HashMap<MapData, u32, ProcContext>,
    /// Powers of the name hash's key, which is drawn at random by `draw_hash_key`.
    pub hash_powers: Array<MapData, u64>,
    pub hash_key: u64,
}

/// What is installed, to take out what a new plan no longer has.
#[derive(Default)]
pub struct Installed {
    resolvers: Vec<Cidr>,
}

/// A plan written into the generation not in force, to be put in force by `commit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared {
    pub generation: u32,
    /// The mode it sets (`enforce_mode::*`).
    pub mode: u32,
}

impl EnforcementMaps {
    /// Writes `plan` into the generation not in force, and `mode` (`enforce_mode::*`) with it: a
    /// plan with no slots in use turns enforcement off, unless opens are refused
    /// (`refuses_reads`). `contexts_known`: the kernel's exec programs that know contexts are
    /// loaded (without them no slot refuses for its context: every process would look
    /// unlabelled). The slots' own data (ports, address blocks, names, owners) goes in as it
    /// is: it never changes in a run, so the generation in force sees nothing new. Nothing
    /// changes what the kernel refuses until `commit`.
    pub fn prepare(
        &mut self,
        plan: &Plan,
        mode: u32,
        refuses_reads: bool,
        contexts_known: bool,
    ) -> Result<Prepared, MapError> {
        let mut masks = PlanMasks::default();
        let mut any = 0u64;
        let mut cidrs: BTreeMap<String, (Cidr, u64)> = BTreeMap::new();
        let mut names: BTreeMap<(u64, u32), u64> = BTreeMap::new();
        let mut owners: BTreeMap<u64, u64> = BTreeMap::new();
        for (slot, rule) in plan.slots.iter().enumerate() {
            let bit = 1u64 << slot;
            let scope = &rule.scope;
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
            if let Some(owner) = &rule.owner {
                *owners
                    .entry(label_hash(owner.as_bytes(), self.hash_key))
                    .or_default() |= bit;
            }
            if plan.contexts & bit != 0 && contexts_known {
                masks.contexts |= bit;
                if rule.owner.is_some() {
                    masks.owned |= bit;
                }
            }
        }
        masks.scoped = plan.scoped;
        // A lookup finds the longest block only: each block carries the slots of the blocks
        // around it too.
        let blocks: Vec<(Cidr, u64)> = cidrs.values().copied().collect();
        for (inner, _) in &blocks {
            let mask = blocks
                .iter()
                .filter(|(outer, _)| {
                    outer.prefix() <= inner.prefix() && outer.contains(inner.network())
                })
                .fold(0, |m, (_, bits)| m | bits);
            self.cidrs.insert(&cidr_key(inner), &mask, 0)?;
        }
        for ((hash, suffix), mask) in names {
            let key = NameKey {
                hash,
                suffix,
                _pad: 0,
            };
            self.names.insert(&key, &mask, 0)?;
        }
        for (owner, mask) in owners {
            self.owners.insert(&owner, &mask, 0)?;
        }
        self.any_address.set(0, &any, 0)?;
        masks.mode = if plan.in_use == 0 && !refuses_reads {
            enforce_mode::OFF
        } else {
            mode
        };
        let generation = self.active ^ 1;
        self.plan.set(generation, &masks, 0)?;
        Ok(Prepared {
            generation,
            mode: masks.mode,
        })
    }

    /// Puts a prepared generation in force: one 4-byte map write, so each decision goes by
    /// the plan before or the plan after.
    pub fn commit(&mut self, prepared: Prepared) -> Result<(), MapError> {
        self.generation.set(0, &prepared.generation, 0)?;
        self.active = prepared.generation;
        Ok(())
    }

    /// Refuses nothing from now on (a plan the maps refused): both generations off.
    pub fn turn_off(&mut self) {
        for generation in 0..2 {
            let _ = self.plan.set(generation, &PlanMasks::default(), 0);
        }
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

    /// The label variable whose value, in a process's environment at exec, is its context
    /// (policy's `[context] label`). After `draw_hash_key`.
    pub fn set_context_label(&mut self, name: &str) -> Result<(), MapError> {
        let label = ContextLabel {
            hash: label_hash(name.as_bytes(), self.hash_key),
            len: name.len() as u32,
            _pad: 0,
        };
        self.context_label.set(0, &label, 0)
    }

    /// The contexts of the processes that ran before keytrail started, by the label each has
    /// (or its nearest ancestor has): (tgid, label). An entry the kernel made since (an exec)
    /// is kept.
    pub fn seed_contexts(&mut self, labels: &[(u32, String)]) {
        for (tgid, label) in labels {
            let context = ProcContext {
                context: label_hash(label.as_bytes(), self.hash_key),
                carried: 0,
            };
            // BPF_NOEXIST: the kernel's own entry is newer.
            let _ = self.contexts.insert(tgid, &context, 1);
        }
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
            deny_context: false,
            context: None,
            context_by_label: true,
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
        // holders carry slot bits. An action changed by a reload takes no new slot.
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
                deny_context: false,
                context: None,
                context_by_label: true,
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
                deny_context: false,
                context: None,
                context_by_label: true,
            }],
        );
        assert_eq!(plan.enforced, 1);
    }

    #[test]
    fn an_owner_makes_a_slot_of_its_own_and_a_rule_context_is_reported() {
        let aws = scope(&["*.amazonaws.com"], &[], &[443]);
        let candidate = |ino, deny, deny_context, context, context_by_label| Candidate {
            file: FileKey::new(1, ino),
            path: "/home/a/.aws/credentials",
            scope: &aws,
            owner: Some(1000),
            deny,
            deny_context,
            context,
            context_by_label,
        };
        let mut slots = Slots::default();
        let plan = plan(
            &mut slots,
            [
                candidate(1, true, false, None, true),
                candidate(2, false, true, None, true),
                candidate(3, false, true, Some("tenant-a"), true),
                candidate(4, true, true, Some("ci"), false),
                candidate(5, false, true, Some("ci"), false),
            ],
        );
        let values: Vec<u32> = plan.values.iter().map(|(_, v)| *v).collect();
        // One slot for the scope with no owner the kernel can know (whatever each refuses),
        // one for the scope owned by the label tenant-a; what each refuses is the plan's.
        assert_eq!(values, [1, 1, 2, 1, 0]);
        assert_eq!(plan.slots[0].owner, None);
        assert_eq!(plan.slots[1].owner.as_deref(), Some("tenant-a"));
        assert_eq!((plan.scoped, plan.contexts), (0b01, 0b11));
        assert_eq!(plan.context_reported.len(), 2);
        assert!(plan.context_reported[0].1.contains("context ci"));
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
