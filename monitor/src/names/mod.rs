//! Naming endpoints: host names from the DNS answers processes receive, and from the server
//! name in TLS ClientHellos. Fed the payload events of the kernel's packet programs
//! (monitor-ebpf/src/packets.rs); bad packets are counted and ignored, never fatal.
mod dns;
mod resolvers;
mod stream;
mod table;
mod tls;

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Arc,
};

use monitor_common::{PAYLOAD_LEN, TLS_SEGMENTS};
use serde::{Deserialize, Serialize};

pub use self::{
    resolvers::Resolvers,
    tls::{Hello, server_name},
};
use self::{stream::Stream, table::NameTable};
use crate::{
    decode::{Payload, PayloadKind},
    vocab::Protocol,
};

/// Answers remembered in all (a few hundred bytes each).
const TABLE_CAPACITY: usize = 65_536;
/// DNS-over-TCP streams and unfinished ClientHellos held at once.
const MAX_STREAMS: usize = 4096;
/// The largest DNS message over TCP, with its length prefix.
const MAX_DNS_TCP: usize = 2 + u16::MAX as usize;
/// Bytes of unfinished DNS-over-TCP messages held over all streams: without it, 4,096 streams
/// of 64 KiB that never finish would hold 256 MiB. Past it, what is held is dropped (counted
/// as truncated), as `make_room` does: streams that never finish cannot lock out new ones.
const MAX_DNS_TCP_HELD: usize = 4 << 20;
/// How long a query waits for its answer, and an unfinished DNS-over-TCP message for its rest
/// (resolvers give up after a few seconds).
const DNS_WAIT_NS: u64 = 30_000_000_000;
/// Queries one socket may have outstanding: resolvers ask A and AAAA at once, and a few more
/// in flight is plenty; past this the oldest is forgotten.
const QUERIES_PER_SOCKET: usize = 16;

/// What the name learning saw, for the stats record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameCounts {
    /// DNS responses parsed that answered a query their socket sent.
    pub dns_answers: u64,
    /// DNS responses that answered no query their socket had sent (a different id or
    /// question): ignored, as a spoofed or stale answer would be.
    #[serde(default)]
    pub dns_unmatched: u64,
    /// DNS responses that answered a query, from a server the host's administrator did not
    /// set (see `Resolvers`): they name nothing.
    #[serde(default)]
    pub dns_untrusted: u64,
    /// DNS answers over UDP the kernel did not report: to a socket with no query outstanding,
    /// or from another address than the one asked.
    #[serde(default)]
    pub dns_unsolicited: u64,
    /// Socket marks the kernel failed to insert (a DNS socket retries at each query): those
    /// sockets' DNS answers, TLS server names and TLS writes were not read.
    #[serde(default)]
    pub sockets_unmarked: u64,
    /// DNS packets that did not parse (malformed, or queries where answers were expected).
    pub dns_malformed: u64,
    /// DNS messages larger than the kernel keeps per packet, or with a missed TCP segment.
    pub dns_truncated: u64,
    /// TLS ClientHellos that named their server.
    pub tls_server_names: u64,
    /// TCP connections whose first bytes were TLS but gave no server name.
    pub tls_unnamed: u64,
    /// Packets on watched sockets whose headers the kernel did not parse (IP fragments, IPv6
    /// extension headers): their payload was not seen.
    pub packets_unparsed: u64,
}

/// A TCP connection's name from its first bytes: settled, with or without a name.
#[derive(Debug, PartialEq, Eq)]
pub struct Settled {
    pub cookie: u64,
    pub server_name: Option<String>,
}

struct PartialHello {
    stream: Stream,
    segments: u32,
}

/// A question a socket sent. (Which server it went to the kernel checks, before NAT: the
/// query's own destination may have been rewritten, the answer's source is restored.)
struct Query {
    question: dns::Question,
    at_ns: u64,
}

pub struct Namer {
    table: NameTable,
    resolvers: Resolvers,
    /// Questions each socket sent and has not had answered, by socket cookie.
    queries: HashMap<u64, VecDeque<Query>>,
    /// Unfinished DNS-over-TCP messages, with when their last segment came.
    dns_streams: HashMap<u64, (Stream, u64)>,
    hellos: HashMap<u64, PartialHello>,
    pub counts: NameCounts,
}

impl Namer {
    /// Answers name addresses when they come from `resolvers`.
    pub fn new(resolvers: Resolvers) -> Self {
        Self {
            table: NameTable::new(TABLE_CAPACITY),
            resolvers,
            queries: HashMap::new(),
            dns_streams: HashMap::new(),
            hellos: HashMap::new(),
            counts: NameCounts::default(),
        }
    }

    /// Learns from one payload. For a TLS connection whose first bytes are complete (or can
    /// say no more), returns what they name.
    pub fn on_payload(&mut self, p: &Payload) -> Option<Settled> {
        match p.kind {
            PayloadKind::DnsAnswer if p.protocol == Protocol::Tcp => {
                self.on_dns_segment(p);
                None
            }
            PayloadKind::DnsAnswer => {
                let cut = p.total_len > p.data.len();
                self.on_dns_message(&p.data, cut, p, p.boot_ns);
                None
            }
            PayloadKind::DnsQuery => {
                self.on_dns_query(p);
                None
            }
            PayloadKind::TlsHello => self.on_hello_segment(p),
            // A plain HTTP request: no TLS name will come; the connection is settled.
            PayloadKind::HttpRequest => Some(Settled {
                cookie: p.cookie,
                server_name: None,
            }),
            // Written into a TLS connection its hello named already.
            PayloadKind::TlsPlaintext => None,
        }
    }

    /// The name `addr` was given by DNS: the newest answer `askers` (the connecting process,
    /// then its ancestors) received. Another process's answer names nothing of this one's.
    pub fn lookup(&self, addr: IpAddr, askers: &[u32], now_ns: u64) -> Option<Arc<str>> {
        self.table.lookup(addr, askers, now_ns)
    }

    /// Whether DNS told one of `askers` that `name` is at `addr` (see `NameTable::answered`).
    pub fn answered(&self, addr: IpAddr, name: &str, askers: &[u32], now_ns: u64) -> bool {
        self.table.answered(addr, name, askers, now_ns)
    }

    /// Forgets expired answers, and queries and unfinished messages waited for too long.
    pub fn sweep(&mut self, now_ns: u64) {
        self.table.shrink(now_ns);
        let live = |at: u64| now_ns.saturating_sub(at) < DNS_WAIT_NS;
        self.dns_streams.retain(|_, (_, at)| live(*at));
        self.queries.retain(|_, pending| {
            pending.retain(|q| live(q.at_ns));
            !pending.is_empty()
        });
    }

    /// A query a socket sent: its answer will have to match it. Over TCP a query has a 2-byte
    /// length prefix, sent with it or in a segment of its own.
    fn on_dns_query(&mut self, p: &Payload) {
        if p.total_len > p.data.len() {
            self.counts.dns_truncated += 1;
            return;
        }
        let messages = match p.protocol {
            Protocol::Tcp => match framed(&p.data) {
                Some(messages) => messages,
                // The length sent in a segment of its own, then the message bare.
                None if p.data.len() > 2 => vec![p.data.as_slice()],
                None => Vec::new(),
            },
            _ => vec![p.data.as_slice()],
        };
        for bytes in messages {
            match dns::query(bytes) {
                Ok(question) => {
                    make_room(&mut self.queries, p.cookie);
                    let pending = self.queries.entry(p.cookie).or_default();
                    if pending.len() >= QUERIES_PER_SOCKET {
                        pending.pop_front();
                    }
                    pending.push_back(Query {
                        question,
                        at_ns: p.boot_ns,
                    });
                }
                Err(e) => {
                    self.counts.dns_malformed += 1;
                    log::debug!("ignored a DNS query from pid {}: {e}", p.pid);
                }
            }
        }
    }

    /// Takes `question` from the queries `cookie` has outstanding; false when it sent none such.
    fn take_query(&mut self, cookie: u64, question: &dns::Question) -> bool {
        let Some(pending) = self.queries.get_mut(&cookie) else {
            return false;
        };
        let Some(at) = pending.iter().position(|q| q.question == *question) else {
            return false;
        };
        pending.remove(at);
        if pending.is_empty() {
            self.queries.remove(&cookie);
        }
        true
    }

    /// One DNS message that came in on the socket of `p` (for TCP, one of a segment's).
    fn on_dns_message(&mut self, bytes: &[u8], cut: bool, p: &Payload, now_ns: u64) {
        let asker = p.pid;
        match dns::answers(bytes) {
            Ok(response) if !self.take_query(p.cookie, &response.question) => {
                self.counts.dns_unmatched += 1;
                log::debug!(
                    "ignored a DNS answer to pid {asker}: it answers no query its socket sent"
                );
            }
            Ok(_)
                if !p
                    .peer
                    .is_some_and(|server| self.resolvers.trusts(server, now_ns)) =>
            {
                self.counts.dns_untrusted += 1;
                log::debug!(
                    "ignored a DNS answer to pid {asker} from {:?}: not a resolver the host set",
                    p.peer
                );
            }
            Ok(response) => {
                self.counts.dns_answers += 1;
                for a in response.answers {
                    self.table.learn(a.addr, &a.name, asker, a.ttl, now_ns);
                }
            }
            Err(_) if cut => self.counts.dns_truncated += 1,
            Err(e) => {
                self.counts.dns_malformed += 1;
                log::debug!("ignored a DNS packet for pid {asker}: {e}");
            }
        }
    }

    /// DNS over TCP: each message has a 2-byte length prefix and may span segments.
    fn on_dns_segment(&mut self, p: &Payload) {
        make_room(&mut self.dns_streams, p.cookie);
        let held: usize = self
            .dns_streams
            .values()
            .map(|(s, _)| s.bytes().len())
            .sum();
        if held + p.data.len() > MAX_DNS_TCP_HELD {
            self.counts.dns_truncated += self.dns_streams.len() as u64;
            self.dns_streams.clear();
        }
        let (stream, last) = self
            .dns_streams
            .entry(p.cookie)
            .or_insert_with(|| (Stream::new(p.seq, MAX_DNS_TCP), p.boot_ns));
        *last = p.boot_ns;
        if p.total_len > p.data.len() || stream.push(p.seq, &p.data).is_err() {
            self.counts.dns_truncated += 1;
            self.dns_streams.remove(&p.cookie);
            return;
        }
        let mut messages = Vec::new();
        while let [hi, lo, rest @ ..] = stream.bytes() {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let Some(message) = rest.get(..len) else {
                break;
            };
            messages.push(message.to_vec());
            stream.consume(2 + len);
        }
        if stream.bytes().is_empty() {
            self.dns_streams.remove(&p.cookie);
        }
        for message in messages {
            self.on_dns_message(&message, false, p, p.boot_ns);
        }
    }

    fn on_hello_segment(&mut self, p: &Payload) -> Option<Settled> {
        make_room(&mut self.hellos, p.cookie);
        let hello = self.hellos.entry(p.cookie).or_insert_with(|| PartialHello {
            stream: Stream::new(p.seq, PAYLOAD_LEN * TLS_SEGMENTS as usize),
            segments: 0,
        });
        hello.segments += 1;
        let pushed = hello.stream.push(p.seq, &p.data).is_ok();
        let cut = p.total_len > p.data.len();
        let server_name = match server_name(hello.stream.bytes()) {
            Hello::ServerName(name) => Some(name),
            Hello::Incomplete if pushed && !cut && hello.segments < TLS_SEGMENTS => return None,
            Hello::NotTls => {
                self.hellos.remove(&p.cookie);
                return Some(Settled {
                    cookie: p.cookie,
                    server_name: None,
                });
            }
            _ => None,
        };
        self.hellos.remove(&p.cookie);
        match server_name {
            Some(_) => self.counts.tls_server_names += 1,
            None => self.counts.tls_unnamed += 1,
        }
        Some(Settled {
            cookie: p.cookie,
            server_name,
        })
    }
}

/// The DNS-over-TCP messages `data` holds, each after its 2-byte length (glibc writes the A and
/// AAAA queries in one segment); None unless they cover it exactly.
fn framed(data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut messages = Vec::new();
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        messages.push(tail.get(..len)?);
        rest = &tail[len..];
    }
    (rest.is_empty() && !messages.is_empty()).then_some(messages)
}

/// Keeps a per-socket map under `MAX_STREAMS` before `cookie` is added. When it is full, what
/// it holds is most likely unfinished bytes of sockets long gone, and is dropped.
fn make_room<V>(map: &mut HashMap<u64, V>, cookie: u64) {
    if map.len() >= MAX_STREAMS && !map.contains_key(&cookie) {
        map.clear();
    }
}

#[cfg(test)]
mod tests;
