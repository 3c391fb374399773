//! Packets on sockets the connect hooks marked (net.rs): DNS answers coming in, and going out
//! the DNS queries they must answer and the first bytes of TCP connections when they open a TLS
//! handshake. Both programs run for every
//! packet of every socket in the cgroup, so an unmarked socket costs one cookie lookup, nothing
//! more. They always pass the packet (return 1).
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

use crate::{DNS_SOCKETS, EVENTS, TLS_WATCH, count, emit};

const PASS: i32 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPV6_HEADER: u32 = 40;
/// First byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;

/// Where a packet's transport payload is.
struct Segment {
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
        protocol,
        src_port,
        dst_port,
        seq,
        offset,
        len: ctx.len().checked_sub(offset)?,
    })
}

/// Copies up to `PAYLOAD_LEN` bytes of the payload to the ring buffer. Bytes of `data` past
/// `len` are left as they were (the decoder reads only `len`).
#[inline(always)]
fn report(ctx: &SkBuffContext, kind: EventKind, tgid: u32, cookie: u64, segment: &Segment) {
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
        (*ev).header = emit::header(kind, tgid);
        (*ev).cookie = cookie;
        (*ev).protocol = u16::from(segment.protocol);
        (*ev)._pad = 0;
        (*ev).seq = segment.seq;
        (*ev).total_len = segment.len;
        (*ev).len = copied;
    }
    emit::submit_batched(entry, &EVENTS);
}

/// Answers from a DNS server to a socket that asked one.
#[cgroup_skb(ingress)]
pub fn keytrail_dns_answer(ctx: SkBuffContext) -> i32 {
    // SAFETY: a cgroup_skb context is a valid argument for this helper.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: the value is copied out at once.
    let Some(tgid) = (unsafe { DNS_SOCKETS.get(&cookie) }).map(|w| w.tgid) else {
        return PASS;
    };
    match segment(&ctx) {
        Some(s) if s.src_port == DNS_PORT && s.len > 0 => {
            report(&ctx, EventKind::DnsAnswer, tgid, cookie, &s)
        }
        Some(_) => {}
        None => count(counter::PACKET_UNPARSED),
    }
    PASS
}

/// Outgoing packets of marked sockets: the DNS queries of sockets that send to port 53 (an
/// answer counts only when it matches one), and the first payload segments of a new TCP
/// connection, when they open a TLS handshake.
#[cgroup_skb(egress)]
pub fn keytrail_egress(ctx: SkBuffContext) -> i32 {
    // SAFETY: a cgroup_skb context is a valid argument for this helper.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: the value is copied out at once.
    if let Some(tgid) = (unsafe { DNS_SOCKETS.get(&cookie) }).map(|w| w.tgid) {
        match segment(&ctx) {
            Some(s) if s.dst_port == DNS_PORT && s.len > 0 => {
                report(&ctx, EventKind::DnsQuery, tgid, cookie, &s)
            }
            Some(_) => {}
            None => count(counter::PACKET_UNPARSED),
        }
        return PASS;
    }
    tls_hello(&ctx, cookie);
    PASS
}

#[inline(always)]
fn tls_hello(ctx: &SkBuffContext, cookie: u64) {
    let Some(watch) = TLS_WATCH.get_ptr_mut(&cookie) else {
        return;
    };
    let Some(s) = segment(ctx) else {
        count(counter::PACKET_UNPARSED);
        return;
    };
    if s.protocol != IPPROTO_TCP || s.len == 0 {
        return; // the handshake's SYN and ACKs
    }
    // SAFETY: an LRU map value pointer, valid during this program; only this socket's packets,
    // which the kernel sends one at a time, touch it.
    let (tgid, seen) = unsafe { ((*watch).tgid, (*watch).segments) };
    if seen == 0 && ctx.load::<u8>(s.offset as usize).ok() != Some(TLS_HANDSHAKE) {
        let _ = TLS_WATCH.remove(&cookie); // not TLS: nothing to name it by
        return;
    }
    report(ctx, EventKind::TlsHello, tgid, cookie, &s);
    if seen + 1 >= TLS_SEGMENTS {
        let _ = TLS_WATCH.remove(&cookie);
    } else {
        // SAFETY: as above.
        unsafe { (*watch).segments = seen + 1 };
    }
}
