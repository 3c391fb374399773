//! What the kernel counts about a loaded program beyond what aya exposes: runs skipped because
//! the program was already running on that CPU (`recursion_misses`, from 5.12). On preemptible
//! kernels fentry programs (and on 7.3.4 tp_btf ones too, as the kernel matrix saw) run with
//! preemption enabled: a reader preempted inside one leaves the program busy on its CPU, and
//! another process's read there is skipped, counted only here. A kprobe is skipped while any
//! BPF program runs on its CPU, counted by some kernels only.
use std::os::fd::{AsFd, AsRawFd};

use aya_obj::generated::bpf_prog_info;

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `bpf_prog_info` of the program behind `fd`, as far as this kernel fills it (zero beyond).
pub fn program_info(fd: impl AsFd) -> Option<bpf_prog_info> {
    // SAFETY: bpf_prog_info is plain integers; all-zero is a valid value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    // union bpf_attr's info member: bpf_fd, info_len, info; the rest must be zero.
    let mut attr = [0u64; 8];
    attr[0] = u64::from(fd.as_fd().as_raw_fd() as u32)
        | (u64::from(size_of::<bpf_prog_info>() as u32) << 32);
    attr[1] = &mut info as *mut bpf_prog_info as u64;
    // SAFETY: attr and info are valid for the sizes given, and live across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            attr.as_mut_ptr(),
            size_of_val(&attr),
        )
    };
    (ret == 0).then_some(info)
}
