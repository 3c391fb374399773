//! Enforcement: refusing, at connect, an endpoint outside the scope of every credential the
//! process holds (policy `action = "deny"`).
//!
//! "Holds" is decided here, in the kernel, as the read happens: the read hooks (files.rs) set
//! the credential's slot in the reader's mask in `HOLDERS`, a child forked afterwards gets its
//! parent's mask, and the connect hooks (net.rs) read it. Userspace is not on the decision path,
//! so a process that reads a key and connects in the same microsecond is refused all the same.
//!
//! A slot is a scope (credentials with the same scope share one). An endpoint is inside a slot
//! when its port is one the slot lists (or it lists none), and its address is in one of the
//! slot's CIDRs (`SCOPE_CIDRS`), or a trusted resolver gave it for one of the slot's host names
//! and its TTL has not run out (`LEARNED`, filled by scope_names.rs as the answers arrive,
//! before the process can connect), or the slot allows any address (`ANY_ADDRESS`: a scope of
//! ports only, or with `*` or `unnamed = "allow"`).
//!
//! A slot may also refuse a connect for the context the process acts in (contexts.rs); a slot
//! there for that alone (not in the plan's `scoped`) lets any endpoint through its scope.
//! Which slots refuse what, and the mode, come from the plan in force (`crate::plan`), read
//! once per decision; a slot's ports, blocks and names never change in a run.
//!
//! A query to a trusted resolver (port 53) is never refused.
//!
//! Maps go with the programs: if keytrail exits or crashes, the hooks detach and nothing stays
//! refused.
use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::bpf_ktime_get_boot_ns,
    macros::map,
    maps::{Array, HashMap, lpm_trie::Key, lpm_trie::LpmTrie},
};
use monitor_common::{AddrKey, DNS_PORT, EXEMPT_BIT, MAX_SLOTS, PlanMasks, decision, enforce_mode};

use crate::{
    LEARNED, TRUSTED_RESOLVERS, enforcement_mode as mode,
    holdings::{self, HOLDERS},
};

/// The slots that allow any address (their ports still count).
#[map]
static ANY_ADDRESS: Array<u64> = Array::with_max_entries(1, 0);

/// Address blocks, each with the slots whose scopes contain it (the daemon folds an enclosing
/// block's slots into the blocks inside it: a lookup finds the longest match only).
#[map]
static SCOPE_CIDRS: LpmTrie<AddrKey, u64> = LpmTrie::with_max_entries(4096, 0);

/// Executables whose processes are never refused, by (s_dev, i_ino).
#[map]
pub static EXEMPT_EXES: HashMap<monitor_common::FileKey, u8> = HashMap::with_max_entries(256, 0);

/// Bits of an address key an LPM lookup matches on: the family and the whole address.
const ADDRESS_BITS: u32 = 160;

/// A read of a credential in `slot` by process `tgid` (`watched`: the credential's slot + 1,
/// from the watched map's value; 0 for a credential whose connects are not enforced).
#[inline(always)]
pub fn mark_holder(tgid: u32, watched: u32, plan: &PlanMasks) {
    if watched == 0 || watched > MAX_SLOTS {
        return;
    }
    let bit = 1u64 << (watched - 1);
    crate::contexts::on_read(tgid, bit, plan);
    match HOLDERS.get_ptr_mut(&tgid) {
        // SAFETY: an LRU map value pointer, valid during this program. Not atomic (5.10 has
        // no atomic OR): two threads of one process reading two credentials at the same
        // instant may lose one bit, until that credential is read again (the README's threat
        // model says so).
        Some(mask) => unsafe { *mask |= bit },
        None => {
            let _ = HOLDERS.insert(&tgid, &bit, BPF_ANY as u64);
        }
    }
}

/// A new process: it holds what its parent held when it forked (a pid used before starts
/// afresh).
#[inline(always)]
pub fn on_fork(parent: u32, child: u32) {
    if mode() == enforce_mode::OFF {
        return;
    }
    // SAFETY: the value is copied out at once.
    match unsafe { HOLDERS.get(&parent) }.copied() {
        Some(mask) => {
            let _ = HOLDERS.insert(&child, &mask, BPF_ANY as u64);
        }
        None => {
            let _ = HOLDERS.remove(&child);
        }
    }
}

/// A process exec'd the file (`dev`, `ino`): it is exempt while it runs an exempt program.
#[inline(always)]
pub fn on_exec(tgid: u32, dev: u32, ino: u64) {
    let exempt = EXEMPT_EXES
        .get_ptr(&monitor_common::FileKey::new(dev, ino))
        .is_some();
    match HOLDERS.get_ptr_mut(&tgid) {
        // SAFETY: as in `mark_holder`.
        Some(mask) => unsafe {
            if exempt {
                *mask |= EXEMPT_BIT;
            } else {
                *mask &= !EXEMPT_BIT;
            }
        },
        None if exempt => {
            let _ = HOLDERS.insert(&tgid, &EXEMPT_BIT, BPF_ANY as u64);
        }
        None => {}
    }
}

/// Whether process `tgid` runs an exempt program.
#[inline(always)]
pub fn is_exempt(tgid: u32) -> bool {
    // SAFETY: the value is copied out at once.
    unsafe { HOLDERS.get(&tgid) }.is_some_and(|mask| mask & EXEMPT_BIT != 0)
}

pub fn on_exit(tgid: u32) {
    let _ = HOLDERS.remove(&tgid);
    crate::contexts::on_exit(tgid);
}

/// What to do with a connect (or a UDP send) by `tgid` to (`family`, `addr`, `port`).
#[inline(always)]
pub fn decide(tgid: u32, family: u16, addr: [u8; 16], port: u16) -> u16 {
    // SAFETY: the value is copied out at once.
    let Some(held) = (unsafe { HOLDERS.get(&tgid) }).copied() else {
        return decision::ALLOWED;
    };
    if held == 0 || held & EXEMPT_BIT != 0 {
        return decision::ALLOWED;
    }
    let (_, plan) = crate::plan();
    let mode = plan.mode;
    if mode == enforce_mode::OFF {
        return decision::ALLOWED;
    }
    let (family, addr) = unmapped(family, addr);
    let key = AddrKey::new(family, addr);
    // Asking a trusted resolver is not acting with a credential: the answer is what lets an
    // in-scope connect through.
    if port == DNS_PORT
        && TRUSTED_RESOLVERS
            .get(&Key::new(ADDRESS_BITS, key))
            .is_some()
    {
        return decision::ALLOWED;
    }
    let mut inside = ANY_ADDRESS.get(0).copied().unwrap_or(0);
    if let Some(mask) = SCOPE_CIDRS.get(&Key::new(ADDRESS_BITS, key)) {
        inside |= *mask;
    }
    // SAFETY: the value is copied out at once.
    if let Some(learned) = unsafe { LEARNED.get(&key) }.copied() {
        // SAFETY: a helper with no arguments.
        if learned.expires_ns > unsafe { bpf_ktime_get_boot_ns() } {
            inside |= learned.mask;
        }
    }
    // Held slots whose scopes contain the endpoint: the address here, the port below.
    let in_scope = held & inside;
    let scoped = held & plan.scoped;
    let reason = if scoped != 0 && !holdings::some_port_allows(scoped & in_scope, port) {
        0
    } else if crate::contexts::refuses(tgid, held, in_scope, port, &plan) {
        decision::BY_CONTEXT
    } else {
        return decision::ALLOWED;
    };
    if mode == enforce_mode::DENY {
        decision::DENIED | reason
    } else {
        decision::WOULD_DENY | reason
    }
}

/// An IPv4 address an IPv6 socket reaches as `::ffff:a.b.c.d` (Java's sockets), as IPv4: the
/// family DNS answers and scopes give it.
#[inline(always)]
fn unmapped(family: u16, addr: [u8; 16]) -> (u16, [u8; 16]) {
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    let mapped = family == AF_INET6
        && u64::from_ne_bytes([
            addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
        ]) == 0
        && addr[8] == 0
        && addr[9] == 0
        && addr[10] == 0xff
        && addr[11] == 0xff;
    if !mapped {
        return (family, addr);
    }
    let mut v4 = [0u8; 16];
    v4[0] = addr[12];
    v4[1] = addr[13];
    v4[2] = addr[14];
    v4[3] = addr[15];
    (AF_INET, v4)
}
