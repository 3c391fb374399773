//! Contexts in the kernel, so that a connect can be refused for `cross-context-reuse` without
//! userspace on the decision path.
//!
//! The kernel knows a process's context by its label: the value of the label variable
//! (`KEYTRAIL_CONTEXT` by default) in its environment at exec, hashed with the run's random
//! key, else its parent's (a child inherits its context unless it declares its own). Contexts
//! the daemon gives by `[[contexts]]` rules or to MCP tool servers are not known here.
//!
//! At an exec that changes the label, what the process held until then becomes `carried`: read
//! in another context. A read of the credential in the new context makes it its own again.
//! A connect is refused (enforce.rs, for the plan's `contexts` slots) when the process holds a
//! credential owned by another context (`CONTEXT_OWNERS`), or carries one into the endpoint's
//! scope and the new context does not own it: what the `cross-context-reuse` rule reports.
//!
//! The environment is read as the exec event reads it (the first and last halves of a long
//! one), into per-CPU scratch, and scanned in chunks, each one program run that tail-calls the
//! next: a loop over 8 KiB in one program passes no verifier.
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::bpf_get_current_pid_tgid,
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray},
    programs::RawTracePointContext,
};
use monitor_common::{CONTEXT_UNKNOWN, ContextLabel, ENV_LEN, PlanMasks, ProcContext};

use crate::kernel::{offsets, read};

/// Processes (by tgid) with a label in their lineage, or carrying what they held before one.
#[map]
static CONTEXTS: LruHashMap<u32, ProcContext> = LruHashMap::with_max_entries(65536, 0);

/// The slots each owning context (by label hash) owns.
#[map]
static CONTEXT_OWNERS: HashMap<u64, u64> = HashMap::with_max_entries(64, 0);

/// The label variable's name.
#[map]
static CONTEXT_LABEL: Array<ContextLabel> = Array::with_max_entries(1, 0);

/// The environment being scanned, and where the scan stands. Every field but `env` is read
/// and written through volatile accesses, so the verifier sees unknown values rather than a
/// path per state (see `NameScratch` in scope_names.rs).
#[repr(C)]
pub struct EnvScan {
    env: [u8; ENV_LEN],
    len: u32,
    cut: u32,
    chunk: u32,
    state: u32,
    name_len: u32,
    value_len: u32,
    name_hash: u64,
    value_hash: u64,
    found: u32,
    found_len: u32,
    found_hash: u64,
}

#[map]
static ENV_SCAN: PerCpuArray<EnvScan> = PerCpuArray::with_max_entries(1, 0);

/// The scanner (`keytrail_env_scan`) at index 0, set by the daemon: each run tail-calls it.
#[map]
static ENV_SCAN_NEXT: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Bytes one run of the scanner reads.
const CHUNK: u32 = 512;
const CHUNKS: u32 = ENV_LEN as u32 / CHUNK;

/// In a variable's name.
const NAME: u32 = 0;
/// In the value of the label variable.
const VALUE: u32 = 1;
/// In another variable, or the part of one cut off.
const SKIP: u32 = 2;

/// The hash of the context process `tgid` acts in, and the slots it carries from another.
#[inline(always)]
fn context_of(tgid: u32) -> (u64, u64) {
    // SAFETY: the value is copied out at once.
    match unsafe { CONTEXTS.get(&tgid) } {
        Some(c) => (c.context, c.carried),
        None => (0, 0),
    }
}

/// A new process acts in its parent's context, carrying what its parent carried.
#[inline(always)]
pub fn on_fork(parent: u32, child: u32) {
    // SAFETY: the value is copied out at once.
    match unsafe { CONTEXTS.get(&parent) }.copied() {
        Some(c) => {
            let _ = CONTEXTS.insert(&child, &c, BPF_ANY as u64);
        }
        None => {
            let _ = CONTEXTS.remove(&child);
        }
    }
}

pub fn on_exit(tgid: u32) {
    let _ = CONTEXTS.remove(&tgid);
}

/// Process `tgid` read the credential of slot `bit` in the context it acts in: it no longer
/// carries it from another.
#[inline(always)]
pub fn on_read(tgid: u32, bit: u64, plan: &PlanMasks) {
    if plan.contexts & bit == 0 {
        return;
    }
    if let Some(c) = CONTEXTS.get_ptr_mut(&tgid) {
        // SAFETY: an LRU map value pointer, valid during this program.
        unsafe { (*c).carried &= !bit };
    }
}

/// Whether a connect by `tgid`, which holds `held`, to `port` is refused for its context;
/// `in_scope`: the held slots whose scopes contain the endpoint's address. The owners are a map
/// from context to the slots it owns, not a loop over slots.
#[inline(always)]
pub fn refuses(tgid: u32, held: u64, in_scope: u64, port: u16, plan: &PlanMasks) -> bool {
    let enforced = held & plan.contexts;
    if enforced == 0 {
        return false;
    }
    let (context, carried) = context_of(tgid);
    let owned = enforced & plan.owned;
    if owned != 0 && not_all_owned_by(context, owned) {
        return true; // owned by another context
    }
    // Read in another context, used here, in its scope (a credential this context owns may
    // be handed to it).
    let carried_in = enforced & !plan.owned & carried & in_scope;
    carried_in != 0 && crate::holdings::some_port_allows(carried_in, port)
}

/// Whether any of the `owned` slots (owned by some context) belongs to another context than
/// the one process `tgid` acts in: its open of that credential is refused (readers.rs).
#[inline(always)]
pub fn owned_elsewhere(tgid: u32, owned: u64) -> bool {
    not_all_owned_by(context_of(tgid).0, owned)
}

/// Whether `context` owns fewer than all of the `owned` slots.
#[inline(always)]
fn not_all_owned_by(context: u64, owned: u64) -> bool {
    // SAFETY: the value is copied out at once.
    let mine = unsafe { CONTEXT_OWNERS.get(&context) }
        .copied()
        .unwrap_or(0);
    owned & !mine != 0
}

/// `sched_process_exec`: reads the new program's environment for the scanner.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn keytrail_exec_context(ctx: RawTracePointContext) -> i32 {
    // Loaded only when policy refused contexts at start; from then on every exec is read,
    // whatever the plan says now, so a reload that refuses them again finds them current.
    let Some(scan) = ENV_SCAN.get_ptr_mut(0) else {
        return 0;
    };
    let task: u64 = ctx.arg(0);
    let mm = read::<u64>(task, offsets().task_mm).unwrap_or(0);
    // SAFETY: `scan` is this CPU's scratch; `env` is ENV_LEN bytes.
    unsafe {
        let (len, cut) = crate::kernel::read_environment(mm, addr_of_mut!((*scan).env).cast());
        write_volatile(addr_of_mut!((*scan).len), len);
        write_volatile(addr_of_mut!((*scan).cut), cut);
        write_volatile(addr_of_mut!((*scan).chunk), 0);
        write_volatile(addr_of_mut!((*scan).state), NAME);
        write_volatile(addr_of_mut!((*scan).name_len), 0);
        write_volatile(addr_of_mut!((*scan).name_hash), 0);
        write_volatile(addr_of_mut!((*scan).found), 0);
        if len == 0 {
            // Empty (no label: the context is inherited), or unreadable.
            let start = read::<u64>(mm, offsets().mm_env_start).unwrap_or(0);
            let end = read::<u64>(mm, offsets().mm_env_end).unwrap_or(u64::MAX);
            if end != start {
                settle(CONTEXT_UNKNOWN);
            }
            return 0;
        }
        ENV_SCAN_NEXT.tail_call(&ctx, 0);
    }
    // The scanner is not in place: the context cannot be known.
    settle(CONTEXT_UNKNOWN);
    0
}

/// The scanner: reads the next `CHUNK` bytes, then tail-calls itself, until the environment
/// ends; then settles the process's context. Never attached: only run by a tail call.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn keytrail_env_scan(ctx: RawTracePointContext) -> i32 {
    let Some(scan) = ENV_SCAN.get_ptr_mut(0) else {
        return 0;
    };
    let Some(label) = CONTEXT_LABEL.get(0).copied() else {
        return 0;
    };
    let key = crate::scope_names::hash_key();
    // SAFETY: `scan` is this CPU's scratch, written by `keytrail_exec_context` on this CPU
    // just before (a tail call stays on its CPU).
    unsafe {
        let len = read_volatile(addr_of!((*scan).len));
        let cut = read_volatile(addr_of!((*scan).cut));
        let chunk = read_volatile(addr_of!((*scan).chunk));
        let base = chunk.wrapping_mul(CHUNK);
        // A long environment's last half starts a chunk (CHUNK divides ENV_HALF): the
        // variable in progress is dropped, and so is the partial one the last half starts in.
        // Here rather than in the loop: a comparison with `cut` there gives the verifier a
        // path per byte that could be the cut.
        if cut != 0 && base == cut {
            write_volatile(addr_of_mut!((*scan).state), SKIP);
        }
        for j in 0..CHUNK {
            let i = base + j;
            if i >= len {
                break;
            }
            let at = (i as usize) & (ENV_LEN - 1);
            step(scan, *addr_of!((*scan).env[at]), &label, key);
        }
        let next = chunk + 1;
        write_volatile(addr_of_mut!((*scan).chunk), next);
        if next < CHUNKS && next.wrapping_mul(CHUNK) < len {
            ENV_SCAN_NEXT.tail_call(&ctx, 0);
            settle(CONTEXT_UNKNOWN); // the tail call failed: the scan is not finished
            return 0;
        }
        // The end, as the daemon reads it: a last variable with no NUL after it counts.
        if read_volatile(addr_of!((*scan).state)) == VALUE {
            finish_variable(scan);
        }
        let found = read_volatile(addr_of!((*scan).found)) != 0;
        let found_len = read_volatile(addr_of!((*scan).found_len));
        if found && found_len > 0 {
            settle(read_volatile(addr_of!((*scan).found_hash)));
        }
    }
    0
}

/// One byte of the environment.
///
/// # Safety
/// `scan` points at this CPU's scratch.
#[inline(always)]
unsafe fn step(scan: *mut EnvScan, byte: u8, label: &ContextLabel, key: u64) {
    // SAFETY: the caller's promise.
    unsafe {
        let state = read_volatile(addr_of!((*scan).state));
        if byte == 0 {
            if state == VALUE {
                finish_variable(scan);
            }
            write_volatile(addr_of_mut!((*scan).state), NAME);
            write_volatile(addr_of_mut!((*scan).name_len), 0);
            write_volatile(addr_of_mut!((*scan).name_hash), 0);
        } else if state == NAME {
            let name_len = read_volatile(addr_of!((*scan).name_len));
            let name_hash = read_volatile(addr_of!((*scan).name_hash));
            if byte == b'=' {
                if name_len == label.len && name_hash == label.hash {
                    write_volatile(addr_of_mut!((*scan).state), VALUE);
                    write_volatile(addr_of_mut!((*scan).value_len), 0);
                    write_volatile(addr_of_mut!((*scan).value_hash), 0);
                } else {
                    write_volatile(addr_of_mut!((*scan).state), SKIP);
                }
            } else {
                write_volatile(addr_of_mut!((*scan).name_len), name_len + 1);
                write_volatile(
                    addr_of_mut!((*scan).name_hash),
                    name_hash.wrapping_mul(key).wrapping_add(u64::from(byte)),
                );
            }
        } else if state == VALUE {
            let value_len = read_volatile(addr_of!((*scan).value_len));
            let value_hash = read_volatile(addr_of!((*scan).value_hash));
            write_volatile(addr_of_mut!((*scan).value_len), value_len + 1);
            write_volatile(
                addr_of_mut!((*scan).value_hash),
                value_hash.wrapping_mul(key).wrapping_add(u64::from(byte)),
            );
        }
    }
}

/// The label variable ended: it is the one that counts, unless a later one comes (the last
/// wins, as in the daemon; an empty value is no label).
///
/// # Safety
/// `scan` points at this CPU's scratch.
#[inline(always)]
unsafe fn finish_variable(scan: *mut EnvScan) {
    // SAFETY: the caller's promise.
    unsafe {
        write_volatile(addr_of_mut!((*scan).found), 1);
        let len = read_volatile(addr_of!((*scan).value_len));
        write_volatile(addr_of_mut!((*scan).found_len), len);
        let hash = read_volatile(addr_of!((*scan).value_hash));
        write_volatile(addr_of_mut!((*scan).found_hash), hash);
    }
}

/// The exec'ing process acts in `context` from now on: what it held in another becomes carried.
#[inline(always)]
fn settle(context: u64) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let held = crate::holdings::held(tgid);
    match CONTEXTS.get_ptr_mut(&tgid) {
        // SAFETY: an LRU map value pointer, valid during this program.
        Some(c) => unsafe {
            if (*c).context != context {
                (*c).carried |= held;
                (*c).context = context;
            }
        },
        None if context != 0 => {
            let c = ProcContext {
                context,
                carried: held,
            };
            let _ = CONTEXTS.insert(&tgid, &c, BPF_ANY as u64);
        }
        None => {}
    }
}
