//! Giving up what the daemon no longer needs once its probes are attached. keytrail starts as
//! root; after load it keeps four capabilities: CAP_BPF and CAP_PERFMON (every bpf() call, and
//! the openat tracepoints it may attach later when a tmpfs credential appears),
//! CAP_DAC_READ_SEARCH (reading users' credential files and watching their directories) and
//! CAP_SYS_PTRACE (reading other users' /proc/PID/environ and exe). The rest (CAP_SYS_ADMIN,
//! CAP_NET_ADMIN, CAP_DAC_OVERRIDE, CAP_SETUID, CAP_KILL, CAP_SYS_MODULE, ...) go from the
//! effective, permitted, inheritable and bounding sets, and no exec can gain them back
//! (no_new_privs): a bug in a parser that hostile bytes reach can no longer load a module,
//! change the probes' cgroup attachments or bypass write permissions on others' files. It is
//! not a sandbox: the process stays uid 0 (root's own files stay writable through their owner
//! bits) and CAP_SYS_PTRACE can attach to another root process.
use std::io;

const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SETPCAP: u32 = 8;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
/// The capabilities kept, as a mask.
pub const KEPT: u64 =
    1 << CAP_DAC_READ_SEARCH | 1 << CAP_SYS_PTRACE | 1 << CAP_PERFMON | 1 << CAP_BPF;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops every capability but `KEPT`, from the bounding set too, and sets no_new_privs.
pub fn drop_to_kept() -> io::Result<()> {
    drop_but(KEPT)
}

/// Drops every capability, from the bounding set too, and sets no_new_privs: for a thread that
/// needs none (capabilities are each thread's own).
pub fn drop_all() -> io::Result<()> {
    drop_but(0)
}

fn drop_but(keep: u64) -> io::Result<()> {
    let last = last_capability();
    for cap in 0..=last {
        if keep & (1 << cap) == 0 && cap != CAP_SETPCAP {
            // SAFETY: prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    // CAP_SETPCAP, needed for the drops above, goes last.
    // SAFETY: as above.
    if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, CAP_SETPCAP as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let low = keep as u32;
    let high = (keep >> 32) as u32;
    let data = [
        Data {
            effective: low,
            permitted: low,
            inheritable: 0,
        },
        Data {
            effective: high,
            permitted: high,
            inheritable: 0,
        },
    ];
    // SAFETY: capset reads a v3 header and two data words, which both live across the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The highest capability this kernel knows.
fn last_capability() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(40)
}
