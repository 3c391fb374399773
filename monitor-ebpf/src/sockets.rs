//! What the kernel keeps on a socket the connect hooks marked (net.rs), for the packet programs
//! (packets.rs) and the TLS send hook (tls.rs), by the socket's cookie, until the socket is
//! released (`keytrail_sock_release`).
//!
//! Why one table emptied at release. The first design kept two LRU tables by cookie that
//! nothing emptied: full of closed connections, they cost every TCP connect two LRU evictions
//! (1.5 us of the connect hook's 2.2 us) and every packet two lookups. Socket-local storage
//! (BPF_MAP_TYPE_SK_STORAGE), which dies with its socket, was measured too: creating it costs
//! some 0.8 us per connect (two memory-accounted allocations), and kprobes cannot reach it, so
//! the TLS send hook of kernels before 6.3 would have needed a second table anyway. This table
//! costs an insert at connect and a delete at release (figures in the README).
//!
//! Still an LRU: not every marked socket reaches the release hook (the kernel's own sockets,
//! MPTCP's subflows among them, skip it; a delete can fail under lock contention), and a table
//! that only filled would, once full, leave every new socket unmarked for the rest of the run.
//! Full of live sockets (`MAX_MARKED` open at once), the oldest marks give way: that socket's
//! later DNS answers, server name and TLS writes are not read. An insert that still fails is
//! counted (`SOCKETS_UNMARKED`).
use aya_ebpf::{
    EbpfContext,
    bindings::BPF_ANY,
    helpers::generated::bpf_get_socket_cookie,
    macros::{cgroup_sock, map},
    maps::LruHashMap,
    programs::SockContext,
};
use monitor_common::counter;

use crate::count;

/// The socket asked a DNS server: its answers are reported.
pub const WATCH_DNS: u32 = 1;
/// An outbound TCP connection whose first payload has not been seen yet.
pub const WATCH_OPENING: u32 = 1 << 1;
/// An outbound TCP connection: the TLS writes into it are reported (tls.rs). A server's
/// writes into the connections it accepted are not: their sockets are not marked.
pub const OUTBOUND_TCP: u32 = 1 << 2;

/// Sockets marked and not yet released, at most.
const MAX_MARKED: u32 = 65536;

/// One socket's marks.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SocketMarks {
    /// The process that made the connection or sent the query.
    pub tgid: u32,
    /// `WATCH_DNS`, `WATCH_OPENING`, `OUTBOUND_TCP`.
    pub watching: u32,
    /// An opening connection: payload segments reported so far. DNS over UDP: queries sent to
    /// `server` and not yet answered (an answer to none, or from another address, is not
    /// reported).
    pub segments: u32,
    /// TLS writes reported so far (tls.rs).
    pub tls_writes: u32,
    /// DNS: the server the process last sent to, as it named it (before NAT): IPv4 in the
    /// first 4 bytes, or the IPv6 address; network byte order.
    pub server: [u8; 16],
}

#[map]
static SOCKETS: LruHashMap<u64, SocketMarks> = LruHashMap::with_max_entries(MAX_MARKED, 0);

/// Marks the socket with `cookie` afresh.
#[inline(always)]
pub fn mark(cookie: u64, marks: &SocketMarks) {
    if SOCKETS.insert(&cookie, marks, BPF_ANY as u64).is_err() {
        count(counter::SOCKETS_UNMARKED);
    }
}

/// The marks of the socket with `cookie`, if it has any.
#[inline(always)]
pub fn of(cookie: u64) -> Option<&'static mut SocketMarks> {
    // SAFETY: an LRU map value, valid during this program run. Only this socket's hooks touch
    // it: the kernel runs them one at a time for a socket, but for a DNS query and its answer
    // on two CPUs (at worst an answer more or fewer is reported).
    SOCKETS
        .get_ptr_mut(&cookie)
        .and_then(|marks| unsafe { marks.as_mut() })
}

/// An inet socket is released: its marks go with it.
#[cgroup_sock(sock_release)]
pub fn keytrail_sock_release(ctx: SockContext) -> i32 {
    // SAFETY: a cgroup sock context is a valid argument for this helper.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let _ = SOCKETS.remove(&cookie);
    1
}
