//! Learning, in the kernel, the addresses a scope's host names have: a DNS answer over UDP from
//! a trusted resolver, to a question whose name is in some enforced scope (`*.amazonaws.com`),
//! adds its A and AAAA addresses to those scopes (`LEARNED`) for their TTL (at least 30 s),
//! before the process that asked can read the answer and connect: a connect to an address from
//! a fresh answer is not refused, and an address no trusted answer gave is never let through.
//! Not learned: answers over TCP (a truncated UDP answer's retry), fragmented answers, answers
//! past the 16th record; and an address an application cached past its TTL (or 30 s) is
//! refused until it asks again.
//!
//! The question's name is hashed as it is read (its DNS wire form, lower case), with the hash
//! of what came before each label kept, so the hash of every suffix at a label boundary follows
//! by arithmetic: `H(name) = H(prefix) * K^len(suffix) + H(suffix)`, K a random key the daemon
//! draws at start (so no name can be made to collide with a scope's). The daemon puts the hash
//! of each scope name in `SCOPE_NAMES`, as the name itself (`suffix` 0) or as what names below
//! it end with (`*.name`, `suffix` 1).
use aya_ebpf::{
    EbpfContext,
    bindings::BPF_ANY,
    helpers::{bpf_ktime_get_boot_ns, generated::bpf_skb_load_bytes},
    macros::map,
    maps::{Array, PerCpuArray, lpm_trie::Key},
    programs::SkBuffContext,
};
use monitor_common::{AddrKey, Learned, NAME_HASH_POWERS, NameKey};

use crate::{LEARNED, SCOPE_NAMES, TRUSTED_RESOLVERS, enforcement_enabled};

/// Scratch space for a question's name (too big for the BPF stack).
#[repr(C)]
pub struct NameScratch {
    name: [u8; NAME_MAX],
    /// The name's hash before each of its bytes.
    before: [u64; NAME_MAX],
    /// Where the last `MAX_LABELS` labels start (a ring).
    starts: [u32; MAX_LABELS],
    /// How many labels, and where the name ends: kept here and read back, so the verifier
    /// sees one unknown value rather than a path per possible count (the walk's paths would
    /// otherwise multiply the hash loop's).
    labels: u32,
    end: u32,
}

#[map]
static NAME_SCRATCH: PerCpuArray<NameScratch> = PerCpuArray::with_max_entries(1, 0);

const NAME_MAX: usize = 256;
/// Labels whose suffixes are looked up, at most: the last ones (a scope name has fewer).
const MAX_LABELS: usize = 16;
/// Labels a question's name may have (longer ones are not learned).
const MAX_NAME_LABELS: u32 = 64;
/// Answers read per message, at most.
const MAX_ANSWERS: u32 = 16;
const DNS_HEADER: u32 = 12;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const MIN_TTL_S: u64 = 30;
const MAX_TTL_S: u64 = 86_400;

/// The name hash's key to the power of the index (index 1: the key), set by the daemon.
#[map]
static NAME_HASH: Array<u64> = Array::with_max_entries(NAME_HASH_POWERS, 0);

/// The name hash's key (also the key of context labels' hashes, contexts.rs).
#[inline(always)]
pub fn hash_key() -> u64 {
    power(1)
}

#[inline(always)]
fn power(n: usize) -> u64 {
    NAME_HASH.get(n as u32).copied().unwrap_or(0)
}

/// A DNS message at `start` in the packet, from `server` (the address it came from, checked
/// against the server the socket asked already): learns its answers' addresses when the
/// server is trusted and the question's name is in a scope.
#[inline(always)]
pub fn learn(ctx: &SkBuffContext, start: u32, server_family: u16, server: [u8; 16]) {
    if !enforcement_enabled() {
        return;
    }
    let trusted = Key::new(160, AddrKey::new(server_family, server));
    if TRUSTED_RESOLVERS.get(&trusted).is_none() {
        return;
    }
    let load_u16 = |at: u32| ctx.load::<u16>(at as usize).ok().map(u16::from_be);
    let Some(flags) = load_u16(start + 2) else {
        return;
    };
    // A response (QR), with no error (RCODE 0), to one question.
    if flags & 0x8000 == 0 || flags & 0x000f != 0 || load_u16(start + 4) != Some(1) {
        return;
    }
    let Some(answers) = load_u16(start + 6) else {
        return;
    };
    let Some((slots, name_len)) = question_slots(ctx, start + DNS_HEADER) else {
        return;
    };
    if slots == 0 {
        return;
    }
    // Past the name's final zero, its type and class.
    let mut at = start + DNS_HEADER + name_len + 1 + 4;
    for i in 0..MAX_ANSWERS {
        if i >= u32::from(answers) {
            break;
        }
        let Some(next) = skip_name(ctx, at) else {
            return;
        };
        at = next;
        let (Some(rtype), Some(rdlen)) = (load_u16(at), load_u16(at + 8)) else {
            return;
        };
        let ttl = ctx
            .load::<u32>(at as usize + 4)
            .map(u32::from_be)
            .unwrap_or(0);
        let rdata = at + 10;
        if rtype == TYPE_A && rdlen == 4 {
            if let Ok(v4) = ctx.load::<[u8; 4]>(rdata as usize) {
                let mut addr = [0u8; 16];
                addr[..4].copy_from_slice(&v4);
                remember(AF_INET, addr, slots, ttl);
            }
        } else if rtype == TYPE_AAAA && rdlen == 16 {
            if let Ok(v6) = ctx.load::<[u8; 16]>(rdata as usize) {
                remember(AF_INET6, v6, slots, ttl);
            }
        }
        at = rdata + u32::from(rdlen);
    }
}

/// The slots whose scopes name the question at `at` (its name's hash, and its suffixes'), and
/// the name's length in wire form; None for a name that is cut, compressed or malformed.
///
/// Two plain loops, which the verifier can follow on every kernel: one walks the labels by
/// their length bytes, one hashes every byte (length bytes are below 64, so lower-casing them
/// changes nothing), keeping the hash before each byte.
#[inline(always)]
fn question_slots(ctx: &SkBuffContext, at: u32) -> Option<(u64, u32)> {
    let scratch = NAME_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: a per-CPU map value; only this program uses it on this CPU, and it is not
    // preempted by itself.
    let scratch = unsafe { &mut *scratch };
    let available = (ctx.len()).checked_sub(at)?.min(NAME_MAX as u32);
    if available == 0 {
        return None;
    }
    // SAFETY: the scratch name is NAME_MAX bytes; the length is masked to 1..=NAME_MAX (a
    // power of two) so the verifier sees it bounded, and is at most what the packet has left.
    let loaded = unsafe {
        let n = core::ptr::read_volatile(&available);
        let n = (n.wrapping_sub(1) & (NAME_MAX as u32 - 1)) + 1;
        bpf_skb_load_bytes(ctx.as_ptr(), at, scratch.name.as_mut_ptr().cast(), n) == 0
    };
    if !loaded {
        return None;
    }
    // The labels: where the last MAX_LABELS start (a ring), and where the name ends.
    let mut pos = 0u32;
    let mut labels = 0u32;
    let mut end = None;
    for _ in 0..MAX_NAME_LABELS {
        let len = u32::from(scratch.name[(pos as usize) & (NAME_MAX - 1)]);
        if len == 0 {
            end = Some(pos);
            break;
        }
        if len > 63 {
            return None; // a compression pointer: not in a question
        }
        scratch.starts[(labels as usize) & (MAX_LABELS - 1)] = pos;
        labels += 1;
        pos += len + 1;
        if pos >= available {
            return None; // cut
        }
    }
    scratch.labels = labels;
    scratch.end = end?;
    // SAFETY: a read of the scratch field just written (volatile: see `NameScratch::labels`).
    let end = unsafe { core::ptr::read_volatile(&scratch.end) };
    if end as usize >= NAME_MAX {
        return None;
    }
    // The hash of the whole name, and before each byte.
    let key = power(1);
    if key == 0 {
        return None; // not set yet
    }
    let mut hash = 0u64;
    for i in 0..NAME_MAX {
        if i as u32 >= end {
            break;
        }
        scratch.before[i & (NAME_MAX - 1)] = hash;
        let byte = scratch.name[i & (NAME_MAX - 1)];
        let lower = if byte.is_ascii_uppercase() {
            byte + 32
        } else {
            byte
        };
        hash = hash.wrapping_mul(key).wrapping_add(u64::from(lower));
    }
    // Read back once more: past the loop, LLVM knows `end` as the loop's exit count and would
    // use the counter, a constant on each of the verifier's paths.
    // SAFETY: as above.
    let (labels, end) = unsafe {
        (
            core::ptr::read_volatile(&scratch.labels),
            core::ptr::read_volatile(&scratch.end),
        )
    };
    let mut slots = lookup(hash, 0);
    // Every name the question is below: the suffixes from its second label on, the shortest
    // (the last labels) first.
    for back in 1..MAX_LABELS as u32 {
        if back >= labels {
            break;
        }
        let start = scratch.starts[((labels - back) as usize) & (MAX_LABELS - 1)];
        let suffix_len = end.wrapping_sub(start) as usize & (NAME_MAX - 1);
        let before = scratch.before[(start as usize) & (NAME_MAX - 1)];
        let suffix = hash.wrapping_sub(before.wrapping_mul(power(suffix_len)));
        slots |= lookup(suffix, 1);
    }
    Some((slots, end))
}

#[inline(always)]
fn lookup(hash: u64, suffix: u32) -> u64 {
    let key = NameKey {
        hash,
        suffix,
        _pad: 0,
    };
    // SAFETY: the value is copied out at once.
    unsafe { SCOPE_NAMES.get(&key) }.copied().unwrap_or(0)
}

/// Past an answer's owner name at `at`: a compression pointer (two bytes), or labels.
#[inline(always)]
fn skip_name(ctx: &SkBuffContext, mut at: u32) -> Option<u32> {
    for _ in 0..MAX_LABELS * 2 {
        let len = ctx.load::<u8>(at as usize).ok()?;
        if len & 0xc0 == 0xc0 {
            return Some(at + 2);
        }
        if len == 0 {
            return Some(at + 1);
        }
        if len > 63 {
            return None;
        }
        at += 1 + u32::from(len);
    }
    None
}

/// An address the slots' names have, until its TTL (at least `MIN_TTL_S`) runs out.
#[inline(always)]
fn remember(family: u16, addr: [u8; 16], slots: u64, ttl_s: u32) {
    let ttl = u64::from(ttl_s).clamp(MIN_TTL_S, MAX_TTL_S);
    // SAFETY: a helper with no arguments.
    let expires_ns = unsafe { bpf_ktime_get_boot_ns() } + ttl * 1_000_000_000;
    let key = AddrKey::new(family, addr);
    match LEARNED.get_ptr_mut(&key) {
        // SAFETY: an LRU map value pointer, valid during this program.
        Some(known) => unsafe {
            // An expired entry's slots are not revived by another name's answer.
            let now = expires_ns - ttl * 1_000_000_000;
            if (*known).expires_ns <= now {
                (*known).mask = slots;
            } else {
                (*known).mask |= slots;
            }
            if (*known).expires_ns < expires_ns {
                (*known).expires_ns = expires_ns;
            }
        },
        None => {
            let learned = Learned {
                mask: slots,
                expires_ns,
            };
            let _ = LEARNED.insert(&key, &learned, BPF_ANY as u64);
        }
    }
}
