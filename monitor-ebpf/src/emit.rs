//! Sending events: reserve in the ring buffer, count what does not fit, and wake the reader only
//! when it is worth a wakeup, since a wakeup per event can cost more than the event.
//! - Credential accesses and process lifecycle events wake the reader when it is idle: they are
//!   what a user waits for (and what must be handled before them), and they are few. An idle
//!   reader is one that has consumed everything before the record (the kernel's adaptive
//!   wakeup); a reader busy draining finds the record on its way and costs no wakeup.
//! - Connects and packets, which can come by the thousand from one process, wake it only when a
//!   batch is waiting; the daemon also drains on a tick.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ktime_get_boot_ns,
    maps::ring_buf::RingBufEntry,
};
use monitor_common::{EventHeader, EventKind, counter};

use crate::{EVENTS, count};

/// Unread bytes past which a batched submit wakes the reader.
const WAKEUP_THRESHOLD: u64 = 64 * 1024;

#[inline(always)]
pub fn reserve<T: 'static>() -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count(counter::RINGBUF_FULL);
    }
    entry
}

/// Submits an event that wakes an idle reader (flags 0: the kernel's adaptive wakeup).
#[inline(always)]
pub fn submit_waking<T>(entry: RingBufEntry<T>) {
    entry.submit(0);
}

/// Submits an event that wakes the reader only past `WAKEUP_THRESHOLD` unread bytes.
#[inline(always)]
pub fn submit_batched<T>(entry: RingBufEntry<T>) {
    let flags = if EVENTS.query(BPF_RB_AVAIL_DATA as u64) > WAKEUP_THRESHOLD {
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
