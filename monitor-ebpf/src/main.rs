//! keytrail's kernel programs. They do as little as they can: process lifecycle events for the
//! tracker, one report per process for each watched credential file (matched by device and inode in
//! a hash map the daemon fills), outbound connects, and the bytes that name an endpoint (DNS
//! answers, TLS ClientHellos), and the first bytes a process writes into a TLS connection
//! (proof of use); and, where policy says `deny`, the refusal of a connect outside the scope of
//! every credential the process holds (enforce.rs), and of a credential's open by a program
//! outside its readers (readers.rs). Everything else is userspace's job.
#![no_std]
#![no_main]

mod contexts;
mod emit;
mod enforce;
mod files;
mod holdings;
mod kernel;
mod net;
mod packets;
mod process;
mod readers;
mod scope_names;
mod sockets;
mod tls;

use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf, lpm_trie::LpmTrie},
};
use monitor_common::{
    AddrKey, FileKey, KernelOffsets, Learned, NameKey, PlanMasks, SeenKey, UdpKey, counter,
};

use crate::emit::Budget;

/// Kernel struct offsets, set by the daemon at load time from BTF.
#[unsafe(no_mangle)]
static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets::UNKNOWN);

/// The daemon's own tgid: its reads of credentials (to resolve the catalog) are not reported.
#[unsafe(no_mangle)]
static SELF_TGID: Global<u32> = Global::new(0);

/// Events to userspace: process lifecycle and packets, which any user can make by the thousand.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 21, 0);

/// Credential accesses and connects, in a ring of their own: a flood of the events above cannot
/// push them out (see `emit`).
#[map]
static CRITICAL: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Each user's budget of events in `CRITICAL` (see `emit::reserve_critical`).
#[map]
static CRITICAL_BUDGETS: LruHashMap<u32, Budget> = LruHashMap::with_max_entries(4096, 0);

/// Kernel time of the last wakeup a credential access forced (see `emit`).
#[map]
static LAST_FORCED_WAKEUP: Array<u64> = Array::with_max_entries(1, 0);

/// Watched credential files by identity; the value (`monitor_common::watched`) carries the
/// credential's enforcement slot + 1, which a read sets in the reader's `HOLDERS` mask
/// (enforce.rs), and its reader set + 1, which an open is checked against (readers.rs).
#[map]
static WATCHED: HashMap<FileKey, u64> = HashMap::with_max_entries(16384, 0);

/// (process, file) pairs already reported, so a process reading a file in a loop sends one event.
/// Keyed by pid and start time, so a reused pid starts afresh and the entries of exited
/// processes simply age out.
#[map]
static SEEN: LruHashMap<SeenKey, u8> = LruHashMap::with_max_entries(65536, 0);

/// (process, address, port) of UDP destinations already reported: UDP has no connection, and a
/// process sending a datagram stream must not flood the ring buffer.
#[map]
static UDP_SEEN: LruHashMap<UdpKey, u8> = LruHashMap::with_max_entries(16384, 0);

/// What enforcement refuses, in two generations (`monitor_common::PlanMasks`), and which is in
/// force (`PLAN_GEN`): the daemon prepares one while the other is in force, then switches.
#[map]
static PLAN: Array<PlanMasks> = Array::with_max_entries(2, 0);

#[map]
static PLAN_GEN: Array<u32> = Array::with_max_entries(1, 0);

/// Host names of enforced scopes, by hash (scope_names.rs), with their slots.
#[map]
static SCOPE_NAMES: HashMap<NameKey, u64> = HashMap::with_max_entries(4096, 0);

/// Addresses trusted resolvers gave for those names (scope_names.rs), read at connect
/// (enforce.rs).
#[map]
static LEARNED: LruHashMap<AddrKey, Learned> = LruHashMap::with_max_entries(65536, 0);

/// Resolvers whose answers count (the host's resolv.conf files and policy's `[names]
/// resolvers`), as address blocks: their answers teach `LEARNED`, and queries to them are
/// never refused.
#[map]
static TRUSTED_RESOLVERS: LpmTrie<AddrKey, u8> = LpmTrie::with_max_entries(256, 0);

/// The plan in force, and its generation. Read once per decision: the rest of that decision
/// goes by what this returned.
#[inline(always)]
fn plan() -> (u32, PlanMasks) {
    let generation = PLAN_GEN.get(0).copied().unwrap_or(0) & 1;
    (
        generation,
        PLAN.get(generation).copied().unwrap_or_default(),
    )
}

#[inline(always)]
fn enforcement_mode() -> u32 {
    plan().1.mode
}

/// Whether policy refuses anything (else the hooks that feed enforcement do nothing).
#[inline(always)]
fn enforcement_enabled() -> bool {
    enforcement_mode() != monitor_common::enforce_mode::OFF
}

/// Per-CPU counters, indexed by `monitor_common::counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[inline(always)]
fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot is only written by this CPU, and programs do not nest here.
        unsafe { *slot += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
