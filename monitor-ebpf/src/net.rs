//! Outbound connections, from cgroup sock_addr hooks on the root cgroup: they see the destination
//! before the kernel acts on it, for TCP and UDP, IPv4 and IPv6. They allow (return 1) unless
//! enforcement refuses (enforce.rs): a program returning 0 makes connect() or sendmsg() fail with
//! EPERM, so the allow path is the default, for the whole machine.
//!
//! They also mark sockets for the packet programs (packets.rs): one that sends to port 53 gets
//! its answers reported, a TCP connection its first bytes (a TLS ClientHello names the server).
use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_NOEXIST, bpf_sock_addr},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::bpf_get_socket_cookie,
    },
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use monitor_common::{ConnectEvent, DNS_PORT, EventKind, UdpKey, decision};

use crate::{
    UDP_SEEN, emit, enforce,
    kernel::EEXIST,
    sockets::{self, SocketMarks},
};

const IPPROTO_TCP: u16 = 6;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_UDP: u16 = 17;
const ALLOW: i32 = 1;
const DENY: i32 = 0;

/// Reports the connect (or UDP send) and says whether it may go ahead.
#[inline(always)]
fn report(ctx: &SockAddrContext, family: u16) -> i32 {
    let sa: *const bpf_sock_addr = ctx.sock_addr;
    // SAFETY: the kernel hands a valid bpf_sock_addr; these are direct context loads.
    let (user_port, protocol, ip4, ip6) = unsafe {
        (
            (*sa).user_port,
            (*sa).protocol as u16,
            (*sa).user_ip4,
            (*sa).user_ip6,
        )
    };
    let mut addr = [0u8; 16];
    if family == AF_INET {
        addr[..4].copy_from_slice(&ip4.to_ne_bytes());
    } else {
        for (i, word) in ip6.iter().enumerate() {
            addr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
    }
    // user_port holds the port in network byte order in its low 16 bits.
    let port = u16::from_be(user_port as u16);
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: a sock_addr context is a valid argument for this helper.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let connect = ConnectEvent {
        header: emit::header(EventKind::Connect, tgid),
        family,
        protocol,
        port,
        decision: enforce::decide(tgid, family, addr, port),
        uid: bpf_get_current_uid_gid() as u32,
        addr,
        comm: [0; 16],
        _pad2: 0,
        cookie,
    };
    if decision::outcome(connect.decision) == decision::DENIED {
        send(connect);
        return DENY;
    }
    if port == DNS_PORT {
        // The server as the process named it, before any NAT: answers come back from it with
        // NAT undone (packets.rs). A socket that asks the same server again keeps the queries
        // it has outstanding (`sendto` runs this hook for every query); another server starts
        // afresh.
        match sockets::of(cookie) {
            Some(marks) if marks.watching & sockets::WATCH_DNS != 0 => {
                marks.tgid = tgid;
                if !crate::packets::same(&marks.server, &addr) {
                    marks.server = addr;
                    marks.segments = 0;
                }
            }
            _ => sockets::mark(
                cookie,
                &SocketMarks {
                    tgid,
                    watching: sockets::WATCH_DNS,
                    segments: 0,
                    tls_writes: 0,
                    server: addr,
                },
            ),
        }
    } else if protocol == IPPROTO_TCP {
        sockets::mark(
            cookie,
            &SocketMarks {
                tgid,
                watching: sockets::WATCH_OPENING | sockets::OUTBOUND_TCP,
                segments: 0,
                tls_writes: 0,
                server: addr,
            },
        );
    }

    if protocol == IPPROTO_UDP {
        let key = UdpKey {
            tgid,
            port,
            family,
            addr,
        };
        // Only EEXIST means this process already sent to this address (see files.rs).
        if UDP_SEEN
            .insert(&key, &1, BPF_NOEXIST as u64)
            .is_err_and(|e| e == -EEXIST)
        {
            return ALLOW;
        }
    }
    send(connect);
    ALLOW
}

/// Sends a connect event, in the critical ring while its user has budget there.
#[inline(always)]
fn send(mut connect: ConnectEvent) {
    connect.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    let uid = connect.uid;
    let Some((mut entry, ring)) = emit::reserve_connect::<ConnectEvent>(uid) else {
        return;
    };
    entry.write(connect);
    emit::submit_batched(entry, ring);
}

#[cgroup_sock_addr(connect4)]
pub fn keytrail_connect4(ctx: SockAddrContext) -> i32 {
    report(&ctx, AF_INET)
}

#[cgroup_sock_addr(connect6)]
pub fn keytrail_connect6(ctx: SockAddrContext) -> i32 {
    report(&ctx, AF_INET6)
}

/// Unconnected UDP (sendto/sendmsg with an address).
#[cgroup_sock_addr(sendmsg4)]
pub fn keytrail_sendmsg4(ctx: SockAddrContext) -> i32 {
    report(&ctx, AF_INET)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn keytrail_sendmsg6(ctx: SockAddrContext) -> i32 {
    report(&ctx, AF_INET6)
}
