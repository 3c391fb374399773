//! Proof of use over TLS: the first bytes a process writes into each TLS connection, before
//! they are encrypted.
//!
//! A uprobe on the TLS libraries' write functions notes, per thread, the buffer the caller
//! passed (`SSL_write`, `SSL_write_ex` and `gnutls_record_send` all take the session, the
//! buffer and its length first). The library encrypts it and sends the record on the same
//! thread before it returns, so the next socket send of that thread says which connection the
//! bytes go to, by the socket's cookie: that hook copies them from the caller's buffer (still
//! valid: the library call has not returned) and reports them. At most `TLS_WRITES` writes per
//! connection are reported; every later write costs a lookup.
//!
//! The send hook runs on every socket send on the machine: it costs a thread id and one hash
//! lookup when the thread has no TLS write pending.
use core::ptr::addr_of_mut;

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, generated::bpf_probe_read_user},
    macros::{btf_tracepoint, kprobe, map, uprobe},
    maps::LruHashMap,
    programs::{BtfTracePointContext, ProbeContext},
};
use monitor_common::{EventKind, PAYLOAD_LEN, PayloadEvent, TLS_WRITES};

use crate::{
    EVENTS, SELF_TGID, emit,
    kernel::{load, offsets, read},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
/// Longest a noted write waits for its send. The library sends within the call; a write that
/// did not send (a memory BIO, a full socket buffer) must not name a later, unrelated send.
const MAX_GAP_NS: u64 = 50_000_000;

/// A TLS write a thread is making: the caller's buffer, and when.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingWrite {
    buf: u64,
    len: u64,
    at_ns: u64,
}

/// TLS writes in progress, by thread id.
#[map]
static TLS_WRITING: LruHashMap<u32, PendingWrite> = LruHashMap::with_max_entries(8192, 0);

/// `SSL_write(ssl, buf, num)`, `SSL_write_ex(ssl, buf, num, written)` and
/// `gnutls_record_send(session, data, size)`: notes the buffer for the send that follows.
#[uprobe]
pub fn keytrail_tls_write(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == SELF_TGID.load() {
        return 0;
    }
    let (Some(buf), Some(len)) = (ctx.arg::<u64>(1), ctx.arg::<u64>(2)) else {
        return 0;
    };
    if buf == 0 || len == 0 {
        return 0;
    }
    let pending = PendingWrite {
        buf,
        len,
        // SAFETY: a helper with no arguments.
        at_ns: unsafe { bpf_ktime_get_boot_ns() },
    };
    let _ = TLS_WRITING.insert(&(pid_tgid as u32), &pending, BPF_ANY as u64);
    0
}

/// `sock_send_length(sk, ret, flags)`, after every socket send (Linux 6.3+): typed loads.
#[btf_tracepoint(function = "sock_send_length")]
pub fn keytrail_tls_send_btf(ctx: BtfTracePointContext) -> u32 {
    let (sk, ret): (u64, i32) = (ctx.arg(0), ctx.arg(1));
    // A send that failed (EAGAIN) still ends the pending write: the library writes the same
    // buffer again when it retries, and notes it again then.
    // SAFETY: `sk` is the typed `struct sock *` argument, and the offsets are constants.
    sent(
        sk,
        ret > 0,
        |sk, o| unsafe { load::<u16>(sk, o) },
        |sk, o| unsafe { load::<u64>(sk, o) },
    );
    0
}

/// `tcp_sendmsg(sk, msg, size)`, where tp_btf or the tracepoint is missing: helper reads.
#[kprobe]
pub fn keytrail_tls_send_kprobe(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        sent(sk, true, read::<u16>, read::<u64>);
    }
    0
}

/// A send on socket `sk` by the current thread: when the thread has a TLS write pending, the
/// write's first bytes are reported for the connection.
#[inline(always)]
fn sent(
    sk: u64,
    sent_bytes: bool,
    read_u16: impl Fn(u64, u32) -> Option<u16>,
    read_u64: impl Fn(u64, u32) -> Option<u64>,
) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let Some(pending) = TLS_WRITING.get_ptr(&tid) else {
        return;
    };
    let o = offsets();
    let family = read_u16(sk, o.sock_family).unwrap_or(0);
    if family != AF_INET && family != AF_INET6 {
        return; // a log line to a Unix socket between the write and its send
    }
    // SAFETY: an LRU map value pointer, valid during this program; only this thread writes it.
    let pending = unsafe { *pending };
    let _ = TLS_WRITING.remove(&tid);
    if !sent_bytes {
        return;
    }
    // SAFETY: a helper with no arguments.
    if unsafe { bpf_ktime_get_boot_ns() }.saturating_sub(pending.at_ns) > MAX_GAP_NS {
        return;
    }
    let cookie = read_u64(sk, o.sock_cookie).unwrap_or(0);
    let Some(marks) = crate::sockets::of(cookie) else {
        return; // not a connection this host made (a server's), or one left unmarked
    };
    if marks.watching & crate::sockets::OUTBOUND_TCP == 0 {
        return;
    }
    let reported = &mut marks.tls_writes;
    // Two threads writing one connection at once may report one write more, never a flood.
    let index = *reported;
    if index >= TLS_WRITES {
        return;
    }
    *reported = index + 1;
    let Some(mut entry) = emit::reserve::<PayloadEvent>() else {
        return;
    };
    let ev = entry.as_mut_ptr();
    let wanted = pending.len.min(PAYLOAD_LEN as u64) as u32;
    // SAFETY: `ev` is a reserved slot of the right size; the copy stays inside `data` because
    // the length is masked to 1..=PAYLOAD_LEN (a power of two), which the verifier can see (the
    // volatile read keeps the compiler from dropping the mask). The source is the current
    // process's memory, read with the helper that checks it.
    unsafe {
        let n = core::ptr::read_volatile(&wanted);
        let n = (n.wrapping_sub(1) & (PAYLOAD_LEN as u32 - 1)) + 1;
        let data = addr_of_mut!((*ev).data).cast();
        let copied = if bpf_probe_read_user(data, n, pending.buf as *const _) == 0 {
            n
        } else {
            0
        };
        (*ev).header = emit::header(EventKind::TlsPlaintext, (pid_tgid >> 32) as u32);
        (*ev).cookie = cookie;
        (*ev).protocol = IPPROTO_TCP;
        (*ev).family = family;
        (*ev).seq = index;
        (*ev).total_len = pending.len.min(u32::MAX as u64) as u32;
        (*ev).len = copied;
        (*ev).peer = [0; 16];
    }
    emit::submit_batched(entry, &EVENTS);
}
