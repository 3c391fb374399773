//! Process lifecycle: exec, fork (of processes, not threads) and exit, for the daemon's tracker.
//! Raw tracepoints: the cheapest hooks there are, and they hand us the task pointers.
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use monitor_common::{ARGV_LEN, EventKind, ExecEvent, ExitEvent, FILENAME_LEN, ForkEvent};

use crate::{
    EVENTS, emit,
    kernel::{offsets, read, task_tgid},
};

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn keytrail_exec(ctx: RawTracePointContext) -> i32 {
    let task: u64 = ctx.arg(0);
    let bprm: u64 = ctx.arg(2);
    let o = offsets();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let uid_gid = bpf_get_current_uid_gid();
    // Before the event: whether the new program is exempt from enforcement must not depend on
    // room in the ring.
    if crate::enforcement_enabled() {
        let exe = read::<u64>(bprm, o.bprm_file).unwrap_or(0);
        if let Some((dev, ino)) = crate::kernel::file_identity(exe) {
            crate::enforce::on_exec(tgid, dev, ino);
        }
    }

    let Some(mut entry) = emit::reserve::<ExecEvent>() else {
        return 0;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved ring-buffer slot of the right size; every field the
    // decoder reads is written below before submit.
    unsafe {
        (*ev).header = emit::header(EventKind::Exec, tgid);
        let parent = read::<u64>(task, o.task_real_parent).unwrap_or(0);
        (*ev).ppid = task_tgid(parent).unwrap_or(0);
        (*ev).uid = uid_gid as u32;
        (*ev).gid = (uid_gid >> 32) as u32;
        (*ev).loginuid = read::<u32>(task, o.task_loginuid).unwrap_or(u32::MAX);
        (*ev).sessionid = read::<u32>(task, o.task_sessionid).unwrap_or(u32::MAX);
        (*ev).start_boot_ns = read::<u64>(task, o.task_start_boottime).unwrap_or(0);
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        // The executed file's owner: bprm->file, symlinks resolved (kuid_t is one u32).
        let exe = read::<u64>(bprm, o.bprm_file).unwrap_or(0);
        let inode = read::<u64>(exe, o.file_inode).unwrap_or(0);
        (*ev).exe_uid = read::<u32>(inode, o.inode_uid).unwrap_or(u32::MAX);
        (*ev)._pad = 0;

        (*ev).filename[0] = 0;
        if let Some(name) = read::<u64>(bprm, o.bprm_filename) {
            bpf_probe_read_kernel_str(
                (*ev).filename.as_mut_ptr().cast(),
                FILENAME_LEN as u32,
                name as *const _,
            );
        }

        (*ev).argv_len = 0;
        let mm = read::<u64>(task, o.task_mm).unwrap_or(0);
        if let (Some(start), Some(end)) = (
            read::<u64>(mm, o.mm_arg_start),
            read::<u64>(mm, o.mm_arg_end),
        ) {
            // Masked so the verifier sees a bounded size: at most ARGV_LEN - 1 bytes.
            let len = (end.saturating_sub(start) as u32).min(ARGV_LEN as u32 - 1) & 0xff;
            if bpf_probe_read_user((*ev).argv.as_mut_ptr().cast(), len, start as *const _) == 0 {
                (*ev).argv_len = len;
            }
        }

        let (len, cut) = crate::kernel::read_environment(mm, (*ev).env.as_mut_ptr());
        (*ev).env_len = len;
        (*ev).env_cut = cut;
    }
    emit::submit_batched(entry, &EVENTS);
    0
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn keytrail_fork(ctx: RawTracePointContext) -> i32 {
    let child: u64 = ctx.arg(1);
    let o = offsets();
    // Plain values, not a pair of Options: carried across the reads, an Option's payload may sit
    // in a stack slot written on one path only, which the 5.10 verifier refuses to read.
    let pid = read::<u32>(child, o.task_pid).unwrap_or(0);
    let tgid = task_tgid(child).unwrap_or(u32::MAX);
    if pid != tgid {
        return 0; // a new thread, not a new process (or the task could not be read)
    }
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    crate::enforce::on_fork(parent, tgid);
    // Whatever enforcement's mode: contexts must stay current while refusal is off.
    crate::contexts::on_fork(parent, tgid);
    let Some(mut entry) = emit::reserve::<ForkEvent>() else {
        return 0;
    };
    entry.write(ForkEvent {
        header: emit::header(EventKind::Fork, tgid),
        ppid: parent,
        _pad: 0,
        start_boot_ns: read::<u64>(child, o.task_start_boottime).unwrap_or(0),
    });
    emit::submit_batched(entry, &EVENTS);
    0
}

/// `sched_process_exit(struct task_struct *p, ...)`: reported for the thread-group leader only.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn keytrail_exit(_ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, pid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if pid != tgid {
        return 0;
    }
    // The leader's exit is not the group's: a leader may leave its threads running
    // (pthread_exit), and a thread's execve kills the leader and takes its place. The holder
    // entry goes only with the last thread (`signal->live`, already decremented here).
    let o = offsets();
    // SAFETY: a helper with no arguments.
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() };
    let signal = read::<u64>(task, o.task_signal).unwrap_or(0);
    if read::<i32>(signal, o.signal_live).is_none_or(|live| live <= 0) {
        crate::enforce::on_exit(tgid);
    }
    let Some(mut entry) = emit::reserve::<ExitEvent>() else {
        return 0;
    };
    entry.write(ExitEvent {
        header: emit::header(EventKind::Exit, tgid),
    });
    emit::submit_batched(entry, &EVENTS);
    0
}
