//! Credential access. A file is watched by identity (s_dev, i_ino), so every path to it counts.
//! Hooks, cheapest first; the daemon attaches what the kernel allows (see monitor/src/probes.rs):
//! - filemap tracepoints: every buffered read and mmap fault of a page-cache file, not a syscall
//!   tracepoint, so syscalls stay on the fast path. As tp_btf where the kernel allows it (typed
//!   arguments, read with plain loads), else as classic tracepoints (a record filled per hit,
//!   read with helper calls): these run on every read on the machine, so each step counts;
//! - LSM file_open: every open, on any filesystem, where BPF LSM is allowed;
//! - fentry, else kprobes, on the security functions every open, read and mmap of a file passes
//!   (security_file_open, security_file_permission, security_mmap_file): kernels before 6.11
//!   have no filemap tracepoint to attach, and kernels booted without `bpf` among their LSMs run
//!   no LSM program. These run on every read and write on the machine (pipes and sockets too),
//!   so they find the file's identity with the fewest loads and filter by the watched map first;
//! - openat exit tracepoints: opens on filesystems without a page cache (tmpfs), where LSM is not
//!   allowed. Attached only when such a credential is watched: any syscall tracepoint slows every
//!   syscall on the machine.
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_current_uid_gid,
    },
    macros::{btf_tracepoint, fentry, kprobe, lsm, tracepoint},
    programs::{BtfTracePointContext, FEntryContext, LsmContext, ProbeContext, TracePointContext},
};
use monitor_common::{AccessHook, EventKind, FileAccessEvent, FileKey, SeenKey, decision, watched};

use crate::{
    SEEN, SELF_TGID, WATCHED, emit,
    kernel::{
        EEXIST, file_identity, file_identity_typed, inode_identity, load, offsets,
        process_start_ns, process_start_ns_typed, read, read_addr,
    },
};

/// Reports the first access of the current process to (dev, ino) when that file is watched.
/// `start` tells when the current process started (the cheapest way the program type allows).
#[inline(always)]
fn report(dev: u32, ino: u64, hook: AccessHook, start: fn() -> u64) {
    report_deciding(dev, ino, hook, start, false);
}

/// The same, and with `decide` (an open at `lsm/file_open`, which may refuse it) whether read
/// denial refuses it; returns the decision's outcome (`decision::ALLOWED` for a file not
/// watched), without its reason.
#[inline(always)]
fn report_deciding(dev: u32, ino: u64, hook: AccessHook, start: fn() -> u64, decide: bool) -> u16 {
    let key = FileKey::new(dev, ino);
    // SAFETY: the value is copied out at once.
    let Some(value) = unsafe { WATCHED.get(&key) }.copied() else {
        return decision::ALLOWED;
    };
    // One plan for the whole decision, and the watched value's half for it.
    let (generation, plan) = crate::plan();
    let value = watched::half(value, generation);
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == SELF_TGID.load() {
        return decision::ALLOWED;
    }
    let decision = if decide {
        crate::readers::decide(tgid, value, &plan)
    } else {
        decision::ALLOWED
    };
    // What happens to the access; `decision` also says why (`BY_CONTEXT`), for the record.
    let outcome = decision::outcome(decision);
    // A move that read denial lets through is no access: not reported (and no read).
    if hook == AccessHook::Move && outcome == decision::ALLOWED {
        return outcome;
    }
    // Before the dedup below: the process holds the credential from this read on, whatever
    // the LRU of reported reads remembers. A refused open reads nothing, nor does a move.
    if outcome != decision::DENIED && hook != AccessHook::Move {
        crate::enforce::mark_holder(tgid, watched::slot_plus_one(value), &plan);
    }
    let seen = SeenKey {
        tgid,
        // A refused open and a read are reported apart (a shell refused, then exec'ing an
        // allowed reader, still has its read seen).
        _pad: u32::from(decision),
        start_boot_ns: start(),
        file: key,
    };
    // A lookup first: the common case is a file read again by the same process, and an LRU
    // insert takes a free node (locking the free list) before it finds the key already there.
    // SAFETY: the value is not kept past this call.
    if unsafe { SEEN.get(&seen) }.is_some() {
        return outcome;
    }
    // BPF_NOEXIST: of two CPUs racing on the same pair, one inserts and reports. Any other
    // refusal is reported anyway: from 6.15 a hash map's lock gives up under contention
    // instead of spinning on (a resilient spinlock), and under emulation that refused one
    // reader's first access in a few; a duplicate record is better than a missed access.
    if SEEN
        .insert(&seen, &1, aya_ebpf::bindings::BPF_NOEXIST as u64)
        .is_err_and(|e| e == -EEXIST)
    {
        return outcome;
    }
    let Some(mut entry) = emit::reserve_critical::<FileAccessEvent>() else {
        let _ = SEEN.remove(&seen); // not reported, so the next access tries again
        return outcome;
    };
    let header = emit::header(EventKind::FileAccess, tgid);
    let now_ns = header.boot_ns;
    entry.write(FileAccessEvent {
        header,
        key,
        hook: hook as u32,
        uid: bpf_get_current_uid_gid() as u32,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        decision: u32::from(decision),
        _pad: 0,
    });
    emit::submit_waking(entry, now_ns);
    outcome
}

/// filemap tracepoints carry `i_ino` and `s_dev` at offsets the daemon read from tracefs.
#[inline(always)]
fn report_filemap(ctx: &TracePointContext, hook: AccessHook) {
    let o = offsets();
    // SAFETY: offsets come from the tracepoint's format file; reads are checked by the helper.
    let ino = unsafe { ctx.read_at::<u64>(o.filemap_ino as usize) };
    let dev = unsafe { ctx.read_at::<u32>(o.filemap_dev as usize) };
    if let (Ok(ino), Ok(dev)) = (ino, dev) {
        report(dev, ino, hook, process_start_ns);
    }
}

#[tracepoint(category = "filemap", name = "mm_filemap_get_pages")]
pub fn keytrail_filemap_read(ctx: TracePointContext) -> u32 {
    report_filemap(&ctx, AccessHook::Read);
    0
}

#[tracepoint(category = "filemap", name = "mm_filemap_fault")]
pub fn keytrail_filemap_fault(ctx: TracePointContext) -> u32 {
    report_filemap(&ctx, AccessHook::Mmap);
    0
}

/// Fault-around maps pages already in the page cache without going through filemap_fault.
#[tracepoint(category = "filemap", name = "mm_filemap_map_pages")]
pub fn keytrail_filemap_map_pages(ctx: TracePointContext) -> u32 {
    report_filemap(&ctx, AccessHook::Mmap);
    0
}

/// (s_dev, i_ino) of a `struct address_space *` that is a tp_btf argument: `mapping->host`,
/// then the inode's number and its superblock's device, by plain loads. The verifier allows
/// them because the argument's type is known from BTF and the offsets, from the read-only
/// globals, are constants to it; a load that would fault gives zero instead.
#[inline(always)]
fn mapping_identity(mapping: u64) -> Option<(u32, u64)> {
    let o = offsets();
    // SAFETY: typed kernel pointers, checked by the verifier and guarded against faults.
    unsafe {
        let inode = load::<u64>(mapping, o.mapping_host)?;
        let ino = load::<u64>(inode, o.inode_ino)?;
        let sb = load::<u64>(inode, o.inode_sb)?;
        let dev = load::<u32>(sb, o.sb_dev)?;
        Some((dev, ino))
    }
}

#[inline(always)]
fn report_mapping(ctx: &BtfTracePointContext, hook: AccessHook) {
    let mapping: u64 = ctx.arg(0);
    if let Some((dev, ino)) = mapping_identity(mapping) {
        report(dev, ino, hook, process_start_ns_typed);
    }
}

#[btf_tracepoint(function = "mm_filemap_get_pages")]
pub fn keytrail_filemap_read_btf(ctx: BtfTracePointContext) -> u32 {
    report_mapping(&ctx, AccessHook::Read);
    0
}

#[btf_tracepoint(function = "mm_filemap_fault")]
pub fn keytrail_filemap_fault_btf(ctx: BtfTracePointContext) -> u32 {
    report_mapping(&ctx, AccessHook::Mmap);
    0
}

#[btf_tracepoint(function = "mm_filemap_map_pages")]
pub fn keytrail_filemap_map_pages_btf(ctx: BtfTracePointContext) -> u32 {
    report_mapping(&ctx, AccessHook::Mmap);
    0
}

/// `security_file_open(struct file *file)`: refuses (EACCES) an open of a credential by a
/// program outside its allowed readers, where policy says so (readers.rs).
#[lsm(hook = "file_open")]
pub fn keytrail_file_open(ctx: LsmContext) -> i32 {
    let file: u64 = ctx.arg(0);
    let Some((dev, ino)) = file_identity(file) else {
        return 0;
    };
    if report_deciding(dev, ino, AccessHook::Open, process_start_ns, true) == decision::DENIED {
        -EACCES
    } else {
        0
    }
}

/// `EACCES`, as an LSM hook returns it negated.
const EACCES: i32 = 13;

/// `security_inode_rename(old_dir, old_dentry, new_dir, new_dentry, flags)`: moving a
/// credential whose opens are refused, by a program outside its readers, is refused too: a
/// renamed file leaves the catalog's paths (and with it the watch), and its opens at the new
/// path would be neither refused nor seen. With RENAME_EXCHANGE both files move.
#[lsm(hook = "inode_rename")]
pub fn keytrail_inode_rename(ctx: LsmContext) -> i32 {
    const RENAME_EXCHANGE: u32 = 1 << 1;
    let (old_dentry, new_dentry, flags): (u64, u64, u32) = (ctx.arg(1), ctx.arg(3), ctx.arg(4));
    if refuse_moving(old_dentry) {
        return -EACCES;
    }
    if flags & RENAME_EXCHANGE != 0 && refuse_moving(new_dentry) {
        return -EACCES;
    }
    0
}

/// `security_inode_link(old_dentry, dir, new_dentry)`: a hard link elsewhere is a way out of
/// the catalog's paths as a rename is (the original then removed).
#[lsm(hook = "inode_link")]
pub fn keytrail_inode_link(ctx: LsmContext) -> i32 {
    let old_dentry: u64 = ctx.arg(0);
    if refuse_moving(old_dentry) {
        -EACCES
    } else {
        0
    }
}

/// Whether read denial refuses moving the file of `dentry` (reported when it does).
#[inline(always)]
fn refuse_moving(dentry: u64) -> bool {
    let Some(inode) = read::<u64>(dentry, offsets().dentry_inode) else {
        return false;
    };
    let Some((dev, ino)) = inode_identity(inode) else {
        return false;
    };
    report_deciding(dev, ino, AccessHook::Move, process_start_ns, true) == decision::DENIED
}

/// `MAY_READ` in `security_file_permission`'s mask (include/linux/fs.h); writes are not reads.
const MAY_READ: u32 = 4;

/// `security_file_open(struct file *file)`, where LSM programs do not run.
#[fentry(function = "security_file_open")]
pub fn keytrail_file_open_fentry(ctx: FEntryContext) -> i32 {
    let file: u64 = ctx.arg(0);
    if let Some((dev, ino)) = file_identity_typed(file) {
        report(dev, ino, AccessHook::Open, process_start_ns);
    }
    0
}

/// `security_file_permission(struct file *file, int mask)`: every read(2), pread, readv,
/// sendfile, splice and io_uring read checks it, on every filesystem (tmpfs too).
#[fentry(function = "security_file_permission")]
pub fn keytrail_file_read_fentry(ctx: FEntryContext) -> i32 {
    let mask: u64 = ctx.arg(1);
    if mask as u32 & MAY_READ != 0 {
        let file: u64 = ctx.arg(0);
        if let Some((dev, ino)) = file_identity_typed(file) {
            report(dev, ino, AccessHook::Read, process_start_ns);
        }
    }
    0
}

/// `security_mmap_file(struct file *file, ...)`: every mmap, at map time (`file` is null for
/// anonymous memory).
#[fentry(function = "security_mmap_file")]
pub fn keytrail_file_mmap_fentry(ctx: FEntryContext) -> i32 {
    let file: u64 = ctx.arg(0);
    if let Some((dev, ino)) = file_identity_typed(file) {
        report(dev, ino, AccessHook::Mmap, process_start_ns);
    }
    0
}

/// The kprobe forms of the three above, where the kernel refuses fentry (no BPF trampolines):
/// arguments come from the saved registers and every load is a helper call.
#[kprobe]
pub fn keytrail_file_open_kprobe(ctx: ProbeContext) -> u32 {
    report_kprobe_file(&ctx, AccessHook::Open);
    0
}

#[kprobe]
pub fn keytrail_file_read_kprobe(ctx: ProbeContext) -> u32 {
    if ctx
        .arg::<u64>(1)
        .is_some_and(|mask| mask as u32 & MAY_READ != 0)
    {
        report_kprobe_file(&ctx, AccessHook::Read);
    }
    0
}

#[kprobe]
pub fn keytrail_file_mmap_kprobe(ctx: ProbeContext) -> u32 {
    report_kprobe_file(&ctx, AccessHook::Mmap);
    0
}

#[inline(always)]
fn report_kprobe_file(ctx: &ProbeContext, hook: AccessHook) {
    if let Some((dev, ino)) = ctx.arg::<u64>(0).and_then(file_identity) {
        report(dev, ino, hook, process_start_ns);
    }
}

/// Byte offset of `ret` in every syscalls:sys_exit_* record (after the common header and nr).
const SYS_EXIT_RET: usize = 16;

/// The exit of open, openat or openat2: the new descriptor's file, looked up in the fd table.
#[tracepoint]
pub fn keytrail_open_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: `ret` is at a fixed offset in every sys_exit record.
    let Ok(fd) = (unsafe { ctx.read_at::<i64>(SYS_EXIT_RET) }) else {
        return 0;
    };
    if fd < 0 {
        return 0;
    }
    let o = offsets();
    // SAFETY: a helper with no arguments.
    let task = unsafe { bpf_get_current_task() };
    let Some(files) = read::<u64>(task, o.task_files) else {
        return 0;
    };
    let Some(fdt) = read::<u64>(files, o.files_fdt) else {
        return 0;
    };
    let Some(max_fds) = read::<u32>(fdt, o.fdt_max_fds) else {
        return 0;
    };
    if fd as u64 >= max_fds as u64 {
        return 0;
    }
    let Some(fd_array) = read::<u64>(fdt, o.fdt_fd) else {
        return 0;
    };
    // `fd_array` is `struct file **`.
    let Some(file) = read_addr::<u64>(fd_array + fd as u64 * 8) else {
        return 0;
    };
    if let Some((dev, ino)) = file_identity(file) {
        report(dev, ino, AccessHook::Open, process_start_ns);
    }
    0
}
