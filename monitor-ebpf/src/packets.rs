//! Packets on sockets the connect hooks marked (net.rs): DNS answers coming in, and going out
//! the DNS queries they must answer and the first bytes of TCP connections when they open a TLS
//! handshake. Both programs run for every packet of every socket in the cgroup, so a packet
//! costs its socket's cookie and one lookup of its marks (sockets.rs), and nothing more unless
//! the socket is marked. They always pass the packet (return 1).
//!
//! For cgroup_skb programs the packet starts at the IP header.
use core::ptr::addr_of_mut;

use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_get_socket_cookie, bpf_skb_load_bytes},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use monitor_common::{DNS_PORT, EventKind, PAYLOAD_LEN, PayloadEvent, TLS_SEGMENTS, counter};

use crate::{
    EVENTS, count, emit,
    sockets::{self, SocketMarks},
};

const PASS: i32 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPV6_HEADER: u32 = 40;
/// First byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;
/// How an HTTP/1 request starts: its method's first four bytes.
const HTTP_METHODS: [[u8; 4]; 7] = [
    *b"GET ", *b"POST", *b"PUT ", *b"HEAD", *b"DELE", *b"PATC", *b"OPTI",
];
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// DNS queries over UDP one socket may have unanswered (resolvers ask A and AAAA at once, and
/// retry): the answers the kernel reports for it.
const MAX_OUTSTANDING: u32 = 16;

/// Where a packet's transport payload is.
struct Segment {
    /// IPv6 rather than IPv4.
    v6: bool,
    protocol: u8,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    offset: u32,
    len: u32,
}

/// Parses the IP and transport headers. None for what is not read here: IP fragments (their
/// payload is not the start of a message), IPv6 extension headers, other protocols.
#[inline(always)]
fn segment(ctx: &SkBuffContext) -> Option<Segment> {
    let first: u8 = ctx.load(0).ok()?;
    let v6 = first >> 4 == 6;
    let (protocol, l4) = match first >> 4 {
        4 => {
            let fragment = u16::from_be(ctx.load::<u16>(6).ok()?);
            if fragment & 0x3fff != 0 {
                return None; // more fragments follow, or this is not the first
            }
            (ctx.load::<u8>(9).ok()?, u32::from(first & 0x0f) * 4)
        }
        6 => (ctx.load::<u8>(6).ok()?, IPV6_HEADER),
        _ => return None,
    };
    let src_port = u16::from_be(ctx.load::<u16>(l4 as usize).ok()?);
    let dst_port = u16::from_be(ctx.load::<u16>(l4 as usize + 2).ok()?);
    let (seq, header) = match protocol {
        IPPROTO_UDP => (0, 8),
        IPPROTO_TCP => {
            let seq = u32::from_be(ctx.load::<u32>(l4 as usize + 4).ok()?);
            let data_offset: u8 = ctx.load(l4 as usize + 12).ok()?;
            (seq, u32::from(data_offset >> 4) * 4)
        }
        _ => return None,
    };
    let offset = l4 + header;
    Some(Segment {
        v6,
        protocol,
        src_port,
        dst_port,
        seq,
        offset,
        len: ctx.len().checked_sub(offset)?,
    })
}

/// Which end of the packet is the other one: where an answer came from, or where a query or a
/// hello goes.
#[derive(Clone, Copy)]
enum Peer {
    Source,
    Destination,
}

/// An IP address as the events carry it: family, and IPv4 in the first 4 bytes or the IPv6
/// address, in network byte order.
#[derive(Clone, Copy)]
struct Address {
    family: u16,
    bytes: [u8; 16],
}

/// The peer's address, from the IP header `segment` was parsed from.
#[inline(always)]
fn address(ctx: &SkBuffContext, segment: &Segment, peer: Peer) -> Option<Address> {
    let mut bytes = [0u8; 16];
    let at = match (segment.v6, peer) {
        (false, Peer::Source) => 12,
        (false, Peer::Destination) => 16,
        (true, Peer::Source) => 8,
        (true, Peer::Destination) => 24,
    };
    let (len, family) = if segment.v6 {
        (16, AF_INET6)
    } else {
        (4, AF_INET)
    };
    // SAFETY: a cgroup_skb context and a local buffer of at least `len` bytes.
    let loaded =
        unsafe { bpf_skb_load_bytes(ctx.as_ptr(), at, addr_of_mut!(bytes).cast(), len) } == 0;
    loaded.then_some(Address { family, bytes })
}

/// Whether two addresses are one. (Compared as words: an array comparison may become a call to
/// `memcmp`, which BPF programs do not have.)
#[inline(always)]
pub(crate) fn same(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let words = |x: &[u8; 16]| {
        let (hi, lo) = x.split_at(8);
        (
            u64::from_ne_bytes(hi.try_into().unwrap_or_default()),
            u64::from_ne_bytes(lo.try_into().unwrap_or_default()),
        )
    };
    words(a) == words(b)
}

/// Copies up to `PAYLOAD_LEN` bytes of the payload to the ring buffer, with the peer's
/// address. Bytes of `data` past `len` are left as they were (the decoder reads only `len`).
#[inline(always)]
fn report(
    ctx: &SkBuffContext,
    kind: EventKind,
    tgid: u32,
    cookie: u64,
    segment: &Segment,
    peer: Option<Address>,
) {
    let Some(mut entry) = emit::reserve::<PayloadEvent>() else {
        return;
    };
    let ev = entry.as_mut_ptr();
    let wanted = segment.len.min(PAYLOAD_LEN as u32);
    // SAFETY: `ev` is a reserved slot of the right size; the copy stays inside `data` because
    // the length is masked to 1..=PAYLOAD_LEN (a power of two), which the verifier can see. The
    // volatile read keeps the compiler from dropping the mask (it knows `wanted` is in range;
    // the verifier does not).
    unsafe {
        let copied = if wanted == 0 {
            0
        } else {
            let n = core::ptr::read_volatile(&wanted);
            let n = (n.wrapping_sub(1) & (PAYLOAD_LEN as u32 - 1)) + 1;
            let data = addr_of_mut!((*ev).data).cast();
            if bpf_skb_load_bytes(ctx.as_ptr(), segment.offset, data, n) == 0 {
                n
            } else {
                0
            }
        };
        let peer = peer.unwrap_or(Address {
            family: 0,
            bytes: [0; 16],
        });
        (*ev).header = emit::header(kind, tgid);
        (*ev).cookie = cookie;
        (*ev).protocol = u16::from(segment.protocol);
        (*ev).family = peer.family;
        (*ev).seq = segment.seq;
        (*ev).total_len = segment.len;
        (*ev).len = copied;
        (*ev).peer = peer.bytes;
    }
    emit::submit_batched(entry, &EVENTS);
}

/// Answers from a DNS server to a socket that asked one. Over UDP, where any host can send a
/// datagram to the socket, only as many answers as it sent queries, and only from the server
/// it last asked: the rest are counted (`DNS_UNSOLICITED`), not reported, so a flood of them
/// costs the ring nothing.
#[cgroup_skb(ingress)]
pub fn keytrail_dns_answer(ctx: SkBuffContext) -> i32 {
    // SAFETY: a cgroup_skb context is a valid argument for this helper.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let Some(marks) = sockets::of(cookie) else {
        return PASS;
    };
    // Copied out at once: a pointer kept live across `learn` changes how LLVM lays out its
    // loops, and 5.10's verifier then lost the bound of a store there.
    let (tgid, watching, outstanding, server) =
        (marks.tgid, marks.watching, marks.segments, marks.server);
    if watching & sockets::WATCH_DNS == 0 {
        return PASS;
    }
    let Some(s) = segment(&ctx) else {
        count(counter::PACKET_UNPARSED);
        return PASS;
    };
    if s.src_port != DNS_PORT || s.len == 0 {
        return PASS;
    }
    let peer = address(&ctx, &s, Peer::Source);
    if s.protocol == IPPROTO_UDP {
        // Races between CPUs (a query and an answer at once) cost at most an answer more or
        // fewer, never a flood.
        if outstanding == 0 || !peer.is_some_and(|p| same(&p.bytes, &server)) {
            count(counter::DNS_UNSOLICITED);
            return PASS;
        }
        marks.segments = outstanding - 1;
        // Enforcement learns the addresses of its scopes' names before the asker reads them.
        if let Some(p) = peer {
            crate::scope_names::learn(&ctx, s.offset, p.family, p.bytes);
        }
    }
    report(&ctx, EventKind::DnsAnswer, tgid, cookie, &s, peer);
    PASS
}

/// Outgoing packets of marked sockets: the DNS queries of sockets that send to port 53 (an
/// answer counts only when it matches one), and the first payload segments of a new TCP
/// connection, when they open a TLS handshake.
#[cgroup_skb(egress)]
pub fn keytrail_egress(ctx: SkBuffContext) -> i32 {
    // SAFETY: a cgroup_skb context is a valid argument for this helper.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let Some(marks) = sockets::of(cookie) else {
        return PASS;
    };
    if marks.watching & sockets::WATCH_DNS != 0 {
        dns_query(&ctx, cookie, marks);
    } else if marks.watching & sockets::WATCH_OPENING != 0 {
        tls_hello(&ctx, cookie, marks);
    }
    PASS
}

#[inline(always)]
fn dns_query(ctx: &SkBuffContext, cookie: u64, marks: &mut SocketMarks) {
    let Some(s) = segment(ctx) else {
        count(counter::PACKET_UNPARSED);
        return;
    };
    if s.dst_port != DNS_PORT || s.len == 0 {
        return;
    }
    let peer = address(ctx, &s, Peer::Destination);
    if s.protocol == IPPROTO_UDP {
        // One that asks without end earns no more than MAX_OUTSTANDING. (The server is the one
        // the connect or sendmsg hook saw, before NAT: this packet's destination may have
        // been rewritten since.)
        marks.segments = (marks.segments + 1).min(MAX_OUTSTANDING);
    }
    report(ctx, EventKind::DnsQuery, marks.tgid, cookie, &s, peer);
}

#[inline(always)]
fn tls_hello(ctx: &SkBuffContext, cookie: u64, marks: &mut SocketMarks) {
    let Some(s) = segment(ctx) else {
        count(counter::PACKET_UNPARSED);
        return;
    };
    if s.protocol != IPPROTO_TCP || s.len == 0 {
        return; // the handshake's SYN and ACKs
    }
    // Only this socket's packets, which the kernel sends one at a time, touch its marks.
    let (tgid, seen) = (marks.tgid, marks.segments);
    if seen == 0 && ctx.load::<u8>(s.offset as usize).ok() != Some(TLS_HANDSHAKE) {
        // Not TLS. A plain HTTP request's head is reported (its credentials prove a use);
        // nothing else's: other protocols' first bytes are theirs alone.
        if ctx
            .load::<u32>(s.offset as usize)
            .is_ok_and(|start| HTTP_METHODS.iter().any(|m| u32::from_ne_bytes(*m) == start))
        {
            let peer = address(ctx, &s, Peer::Destination);
            report(ctx, EventKind::HttpRequest, tgid, cookie, &s, peer);
        }
        marks.watching &= !sockets::WATCH_OPENING;
        return;
    }
    let peer = address(ctx, &s, Peer::Destination);
    report(ctx, EventKind::TlsHello, tgid, cookie, &s, peer);
    if seen + 1 >= TLS_SEGMENTS {
        marks.watching &= !sockets::WATCH_OPENING;
    } else {
        marks.segments = seen + 1;
    }
}
