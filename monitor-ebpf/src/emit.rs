//! Sending events: reserve in the ring buffer, count what does not fit, and wake the reader only
//! when a batch is waiting (the daemon also drains on a short tick), since a wakeup per event
//! costs more than the event.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ktime_get_boot_ns,
    maps::ring_buf::RingBufEntry,
};
use monitor_common::{EventHeader, EventKind, counter};

use crate::{EVENTS, count};

/// Unread bytes past which a submit wakes the reader.
const WAKEUP_THRESHOLD: u64 = 64 * 1024;

#[inline(always)]
pub fn reserve<T: 'static>() -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count(counter::RINGBUF_FULL);
    }
    entry
}

#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>) {
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
