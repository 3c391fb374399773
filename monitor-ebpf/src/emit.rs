//! Sending events: reserve in a ring buffer, count what does not fit, and wake the reader only
//! when it is worth a wakeup. Two rings: credential accesses and connects, which a user could
//! not make keytrail lose by flooding it with anything else, go to `CRITICAL`; process
//! lifecycle and packets, which any user can make by the thousand, to `EVENTS`. Each user but
//! root has a budget for connects in `CRITICAL` (`CRITICAL_PER_SECOND`, bursts of
//! `CRITICAL_BURST`): past it, that user's connects go to `EVENTS` (counted), so one user
//! connecting to thousands of addresses a second cannot fill `CRITICAL` for everyone else.
//! Credential accesses have no budget: the kernel reports each (process, file) pair once, so a
//! flood of them takes a process per event, and a user who spent their budget must not be able
//! to send their own reads where a flood can lose them.
//!
//! A wakeup costs more than most events, and not only to the reader: on a small machine the
//! reader's work slows the processes that made the events.
//! - Bulk events (process lifecycle, connects, packets) wake the reader only when a batch is
//!   waiting; the daemon also drains on a short tick.
//! - A credential access is what a user waits for, and it is rare (once per process and
//!   credential), so it wakes the reader at once: forced, because the adaptive wakeup fails
//!   while bulk events sit unconsumed in front of it (the reader's own fork, say). At most one
//!   forced wakeup per `FORCE_EVERY_NS`: in a storm of accesses the reader is busy anyway, and
//!   an access between two forced wakeups is drained with the next one, or by the tick.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ktime_get_boot_ns,
    maps::ring_buf::RingBufEntry,
};
use monitor_common::{EventHeader, EventKind, counter};

use aya_ebpf::maps::RingBuf;

use crate::{CRITICAL, CRITICAL_BUDGETS, EVENTS, LAST_FORCED_WAKEUP, count};

/// Events in `CRITICAL` one user is given a second, and the most saved up. The daemon drains
/// some 80,000 events a second; the ring holds some 10,000 accesses or connects.
const CRITICAL_PER_SECOND: u64 = 1024;
const CRITICAL_BURST: u64 = 4096;
const NS_PER_EVENT: u64 = 1_000_000_000 / CRITICAL_PER_SECOND;

/// One user's budget: events left, and when it was last filled up.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Budget {
    tokens: u64,
    at_ns: u64,
}

/// Unread bytes past which a bulk submit wakes the reader.
const WAKEUP_THRESHOLD: u64 = 64 * 1024;
/// Least time between two wakeups forced by credential accesses.
const FORCE_EVERY_NS: u64 = 1_000_000;

/// A slot in the bulk ring (process lifecycle, packets).
#[inline(always)]
pub fn reserve<T: 'static>() -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count(counter::RINGBUF_FULL);
    }
    entry
}

/// A slot in the ring of credential accesses and connects.
#[inline(always)]
pub fn reserve_critical<T: 'static>() -> Option<RingBufEntry<T>> {
    let entry = CRITICAL.reserve::<T>(0);
    if entry.is_none() {
        count(counter::RINGBUF_FULL);
        count(counter::CRITICAL_FULL);
    }
    entry
}

/// A slot for a connect by `uid`: in `CRITICAL` while the user's budget lasts, else in
/// `EVENTS` (counted in `CRITICAL_DEMOTED`). Returns the ring it is in.
#[inline(always)]
pub fn reserve_connect<T: 'static>(uid: u32) -> Option<(RingBufEntry<T>, &'static RingBuf)> {
    if !within_budget(uid) {
        count(counter::CRITICAL_DEMOTED);
        return reserve::<T>().map(|entry| (entry, &EVENTS));
    }
    reserve_critical::<T>().map(|entry| (entry, &CRITICAL))
}

/// Takes one event from `uid`'s budget, filling it up for the time since it was last filled.
/// CPUs race on it unlocked: at worst an event more or fewer goes to `CRITICAL`. Root has no
/// budget: root can stop keytrail anyway, and root's services must not wait behind it.
#[inline(always)]
fn within_budget(uid: u32) -> bool {
    if uid == 0 {
        return true;
    }
    // SAFETY: a helper with no arguments.
    let now_ns = unsafe { bpf_ktime_get_boot_ns() };
    let Some(budget) = CRITICAL_BUDGETS.get_ptr_mut(&uid) else {
        let fresh = Budget {
            tokens: CRITICAL_BURST - 1,
            at_ns: now_ns,
        };
        let _ = CRITICAL_BUDGETS.insert(&uid, &fresh, 0);
        return true;
    };
    // SAFETY: an LRU map value pointer, valid during this program.
    unsafe {
        // Capped (a budget idle for weeks earns a burst, no more) and counted in whole
        // events: the time toward the next one is kept, not lost.
        let idle_ns = now_ns
            .saturating_sub((*budget).at_ns)
            .min(CRITICAL_BURST * NS_PER_EVENT);
        let earned = idle_ns / NS_PER_EVENT;
        if earned > 0 {
            (*budget).tokens = ((*budget).tokens + earned).min(CRITICAL_BURST);
            (*budget).at_ns = now_ns - (idle_ns - earned * NS_PER_EVENT);
        }
        if (*budget).tokens == 0 {
            return false;
        }
        (*budget).tokens -= 1;
    }
    true
}

/// Submits a credential access at kernel time `now_ns`, waking the reader (see the module doc).
#[inline(always)]
pub fn submit_waking<T>(entry: RingBufEntry<T>, now_ns: u64) {
    let mut flags = 0; // adaptive: wakes a reader that has consumed everything before it
    if let Some(last) = LAST_FORCED_WAKEUP.get_ptr_mut(0) {
        // SAFETY: a plain word in an array map; a race between CPUs costs one wakeup more.
        unsafe {
            if now_ns.wrapping_sub(*last) >= FORCE_EVERY_NS {
                *last = now_ns;
                flags = BPF_RB_FORCE_WAKEUP;
            }
        }
    }
    entry.submit(flags as u64);
}

/// Submits an event to `ring` (where it was reserved): the reader is woken past
/// `WAKEUP_THRESHOLD` unread bytes.
#[inline(always)]
pub fn submit_batched<T>(entry: RingBufEntry<T>, ring: &RingBuf) {
    let flags = if ring.query(BPF_RB_AVAIL_DATA as u64) > WAKEUP_THRESHOLD {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(flags as u64);
}

#[inline(always)]
pub fn header(kind: EventKind, tgid: u32) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tgid,
        // SAFETY: a helper with no arguments.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
    }
}
