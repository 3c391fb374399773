//! What processes hold, for enforcement (enforce.rs) and contexts (contexts.rs): each
//! process's mask of the slots it read, and each slot's ports.
use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap},
};
use monitor_common::{EXEMPT_BIT, MAX_SLOTS, SLOT_PORTS as PORTS_PER_SLOT, SlotPorts};

/// Processes (by tgid) holding enforced credentials: a mask of slots, and `EXEMPT_BIT`.
#[map]
pub static HOLDERS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(65536, 0);

/// Each slot's ports.
#[map]
static SLOT_PORTS: Array<SlotPorts> = Array::with_max_entries(MAX_SLOTS, 0);

/// The slots process `tgid` holds.
#[inline(always)]
pub fn held(tgid: u32) -> u64 {
    // SAFETY: the value is copied out at once.
    unsafe { HOLDERS.get(&tgid) }.map_or(0, |mask| mask & !EXEMPT_BIT)
}

/// Whether one of the slots in `candidates` allows `port`. A yes or no that returns as soon
/// as it knows, rather than a mask built up across the loop: the verifier would walk the loop
/// once for every mask a path could build.
#[inline(always)]
pub fn some_port_allows(candidates: u64, port: u16) -> bool {
    for slot in 0..MAX_SLOTS {
        if candidates & (1u64 << slot) == 0 {
            continue;
        }
        let Some(ports) = SLOT_PORTS.get(slot) else {
            continue;
        };
        let count = ports.count;
        if count == 0 {
            return true;
        }
        for i in 0..PORTS_PER_SLOT {
            if (i as u32) < count && ports.ports[i] == port {
                return true;
            }
        }
    }
    false
}
