//! Read denial: refusing, at open, a credential to a program outside its allowed readers
//! (policy `action = "deny"` for `unexpected-reader`), or to a process acting in another
//! context than the credential's owner (`action = "deny"` for `cross-context-reuse`), where BPF
//! LSM runs.
//!
//! A credential whose opens are enforced carries a reader set in the watched map's value
//! (`monitor_common::watched`); `READERS` maps each allowed executable, by file identity, to a
//! mask of the sets it belongs to, as the daemon resolved them from policy's reader patterns.
//! The executable is the process's `mm->exe_file`, the file the kernel runs: neither its name
//! nor a symlink's counts, and a copy elsewhere is another file.
use aya_ebpf::{helpers::bpf_get_current_task, macros::map, maps::HashMap};
use monitor_common::{
    FileKey, MAX_READER_SETS, MAX_SLOTS, PlanMasks, decision, enforce_mode, watched,
};

use crate::{
    enforce,
    kernel::{file_identity, offsets, read},
};

/// Allowed readers, by (s_dev, i_ino) of their executable: a mask of reader sets.
#[map]
static READERS: HashMap<FileKey, u64> = HashMap::with_max_entries(4096, 0);

/// What to do with an open of a watched credential (the watched map's value `value`, its half
/// for the plan in force, `plan`) by the current process, `tgid`: refused when the program is
/// outside the credential's readers, or (`decision::BY_CONTEXT`) when the credential belongs to
/// another context than the process acts in (contexts.rs).
#[inline(always)]
pub fn decide(tgid: u32, value: u32, plan: &PlanMasks) -> u16 {
    let mode = plan.mode;
    if mode == enforce_mode::OFF {
        return decision::ALLOWED;
    }
    let set = watched::reader_set_plus_one(value);
    let by_readers = set != 0 && set <= MAX_READER_SETS;
    let slot = watched::slot_plus_one(value);
    let owned = if slot != 0 && slot <= MAX_SLOTS {
        (1u64 << (slot - 1)) & plan.contexts & plan.owned
    } else {
        0
    };
    if !by_readers && owned == 0 {
        return decision::ALLOWED;
    }
    if enforce::is_exempt(tgid) {
        return decision::ALLOWED;
    }
    let refused = if mode == enforce_mode::DENY {
        decision::DENIED
    } else {
        decision::WOULD_DENY
    };
    let Some((exe, traced)) = current_exe() else {
        return decision::ALLOWED; // a kernel thread (nfsd, ksmbd): no program, no context
    };
    if owned != 0 && crate::contexts::owned_elsewhere(tgid, owned) {
        return refused | decision::BY_CONTEXT;
    }
    if !by_readers {
        return decision::ALLOWED;
    }
    // A traced reader runs its tracer's will (ptrace, gdb, strace): not the reader's own code.
    if traced {
        return refused;
    }
    // SAFETY: the value is copied out at once.
    let sets = unsafe { READERS.get(&exe) }.copied().unwrap_or(0);
    if sets & (1u64 << (set - 1)) != 0 {
        decision::ALLOWED
    } else {
        refused
    }
}

/// The file the current process runs, by identity, and whether a tracer is attached to the
/// current thread (an unknown `ptrace` member counts as none).
#[inline(always)]
fn current_exe() -> Option<(FileKey, bool)> {
    let o = offsets();
    // SAFETY: a helper with no arguments.
    let task = unsafe { bpf_get_current_task() };
    let mm = read::<u64>(task, o.task_mm)?;
    let exe = read::<u64>(mm, o.mm_exe_file)?;
    if exe == 0 {
        return None;
    }
    let (dev, ino) = file_identity(exe)?;
    let traced = read::<u32>(task, o.task_ptrace).unwrap_or(0) != 0;
    Some((FileKey::new(dev, ino), traced))
}
