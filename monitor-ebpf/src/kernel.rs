//! Reading kernel memory at offsets the daemon found in BTF.
use core::{ffi::c_void, mem::MaybeUninit};

use aya_ebpf::helpers::{bpf_get_current_task, bpf_get_current_task_btf, generated};
use monitor_common::{ENV_HALF, ENV_LEN, KernelOffsets, UNKNOWN_OFFSET, counter};

use crate::{OFFSETS, count};

/// `EEXIST`, as map helpers return it negated: the key is in the map already.
pub const EEXIST: i32 = 17;

#[inline(always)]
pub fn offsets() -> KernelOffsets {
    OFFSETS.load()
}

/// Reads a `T` at `base + offset`. An unknown offset (the daemon did not find the member) and a
/// null base (a broken chain) give `None`, as does a failed read (which is counted).
#[inline(always)]
pub fn read<T: Copy>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == UNKNOWN_OFFSET {
        return None;
    }
    read_addr(base + offset as u64)
}

/// Reads a `T` at a kernel address; a failed read is counted.
///
/// The destination is zeroed first: with an uninitialised one, LLVM may load it on the failure
/// path too (the Option's payload travels in the same stack slot either way), and verifiers
/// before 5.16 refuse any read of uninitialised stack ("invalid read from stack").
#[inline(always)]
pub fn read_addr<T: Copy>(addr: u64) -> Option<T> {
    let mut value = MaybeUninit::<T>::zeroed();
    // SAFETY: the helper checks the address and writes at most size_of::<T>() bytes into
    // `value`; T is plain data, for which all-zero bytes are a valid value either way.
    let ret = unsafe {
        generated::bpf_probe_read_kernel(
            value.as_mut_ptr().cast(),
            size_of::<T>() as u32,
            addr as *const c_void,
        )
    };
    if ret == 0 {
        // SAFETY: zeroed, then filled by the helper.
        Some(unsafe { value.assume_init() })
    } else {
        count(counter::READ_FAILED);
        None
    }
}

/// Loads a `T` at `base + offset` with a plain load, for pointers the verifier knows the type
/// of (tp_btf arguments and what is loaded from them). An unknown offset or a null base gives
/// `None`.
///
/// # Safety
/// `base` must be such a pointer and `offset` a constant the verifier can see (a read-only
/// global), at a member of type `T`.
#[inline(always)]
pub unsafe fn load<T: Copy>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == UNKNOWN_OFFSET {
        return None;
    }
    // SAFETY: see above; the kernel turns a faulting load into a zero.
    Some(unsafe { core::ptr::read_volatile((base + offset as u64) as *const T) })
}

/// When the current process started: its thread-group leader's `start_boottime` (0 if unknown).
#[inline(always)]
pub fn process_start_ns() -> u64 {
    let o = offsets();
    // SAFETY: a helper with no arguments.
    let task = unsafe { bpf_get_current_task() };
    let leader = read::<u64>(task, o.task_group_leader).unwrap_or(task);
    read::<u64>(leader, o.task_start_boottime).unwrap_or(0)
}

/// The same by plain loads through the current task's BTF type, for tp_btf programs (which
/// exist from 5.11, as `bpf_get_current_task_btf` does): a few loads instead of two helper
/// calls on every read of a watched file.
#[inline(always)]
pub fn process_start_ns_typed() -> u64 {
    let o = offsets();
    // SAFETY: the helper returns the current task as a typed pointer, which the verifier lets
    // `load` read at the constant offsets from BTF.
    unsafe {
        let task = bpf_get_current_task_btf() as u64;
        let leader = load::<u64>(task, o.task_group_leader).unwrap_or(task);
        load::<u64>(leader, o.task_start_boottime).unwrap_or(0)
    }
}

/// The tgid of a `struct task_struct *`.
#[inline(always)]
pub fn task_tgid(task: u64) -> Option<u32> {
    read::<u32>(task, offsets().task_tgid)
}

/// (s_dev, i_ino) of a `struct file *`.
#[inline(always)]
pub fn file_identity(file: u64) -> Option<(u32, u64)> {
    inode_identity(read::<u64>(file, offsets().file_inode)?)
}

/// (s_dev, i_ino) of a `struct inode *`, by helper reads.
#[inline(always)]
pub fn inode_identity(inode: u64) -> Option<(u32, u64)> {
    let o = offsets();
    let ino = read::<u64>(inode, o.inode_ino)?;
    let sb = read::<u64>(inode, o.inode_sb)?;
    let dev = read::<u32>(sb, o.sb_dev)?;
    Some((dev, ino))
}

/// The same by plain loads, for a `struct file *` the verifier knows the type of (an fentry
/// argument): four loads instead of four helper calls, on hooks that see every read.
#[inline(always)]
pub fn file_identity_typed(file: u64) -> Option<(u32, u64)> {
    let o = offsets();
    // SAFETY: a typed kernel pointer and constant offsets from BTF; see `load`.
    unsafe {
        let inode = load::<u64>(file, o.file_inode)?;
        let ino = load::<u64>(inode, o.inode_ino)?;
        let sb = load::<u64>(inode, o.inode_sb)?;
        let dev = load::<u32>(sb, o.sb_dev)?;
        Some((dev, ino))
    }
}

/// Copies the environment of `mm` (a `struct mm_struct *`) to `dst` (`ENV_LEN` bytes): all of
/// it, or when longer its first and last `ENV_HALF` bytes. Returns the bytes copied and where
/// the last half starts (0: all of it); (0, 0) when it could not be read. (Plain values, not an
/// Option: see `keytrail_fork`.)
///
/// # Safety
/// `dst` must point at `ENV_LEN` writable bytes.
#[inline(always)]
pub unsafe fn read_environment(mm: u64, dst: *mut u8) -> (u32, u32) {
    let o = offsets();
    let (Some(start), Some(end)) = (
        read::<u64>(mm, o.mm_env_start),
        read::<u64>(mm, o.mm_env_end),
    ) else {
        return (0, 0);
    };
    let total = end.saturating_sub(start);
    if total < ENV_LEN as u64 {
        // Masked so the verifier sees a bound below ENV_LEN.
        let len = (total as u32) & (ENV_LEN as u32 - 1);
        // SAFETY: `dst` holds ENV_LEN bytes (the caller's promise) and `len` is below that.
        let read = unsafe { generated::bpf_probe_read_user(dst.cast(), len, start as *const _) };
        return if read == 0 { (len, 0) } else { (0, 0) };
    }
    let half = ENV_HALF as u32;
    // SAFETY: as above; each half is ENV_HALF bytes, the second at ENV_HALF.
    let (head, tail) = unsafe {
        (
            generated::bpf_probe_read_user(dst.cast(), half, start as *const _),
            generated::bpf_probe_read_user(
                dst.add(ENV_HALF).cast(),
                half,
                (end - ENV_HALF as u64) as *const _,
            ),
        )
    };
    if head == 0 && tail == 0 {
        (ENV_LEN as u32, half)
    } else {
        (0, 0)
    }
}
