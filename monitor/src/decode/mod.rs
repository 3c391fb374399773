//! Ring-buffer bytes -> typed kernel events. Pure: the tests feed it recorded bytes.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use monitor_common::{
    ARGV_LEN, AccessHook, ConnectEvent, EventHeader, EventKind, ExecEvent, ExitEvent,
    FileAccessEvent, FileKey, ForkEvent, PayloadEvent, decision,
};

use crate::vocab::{Enforced, Hook, Protocol, RuleId};

/// One kernel event, decoded. `boot_ns` is nanoseconds since boot (see `clock`).
#[derive(Clone, Debug, PartialEq)]
pub enum KernelEvent {
    Exec(Exec),
    Fork {
        pid: u32,
        ppid: u32,
        start_boot_ns: u64,
        boot_ns: u64,
    },
    Exit {
        pid: u32,
        boot_ns: u64,
    },
    FileAccess {
        pid: u32,
        file: FileKey,
        hook: Hook,
        uid: u32,
        comm: String,
        /// What read denial made of the open (`lsm/file_open` only).
        enforcement: Option<Enforced>,
        /// The rule it refused for: `unexpected-reader` or `cross-context-reuse`.
        enforcement_rule: Option<RuleId>,
        boot_ns: u64,
    },
    Connect(Connect),
    Payload(Payload),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Exec {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub loginuid: Option<u32>,
    pub sessionid: Option<u32>,
    pub start_boot_ns: u64,
    pub comm: String,
    pub filename: String,
    pub argv: Vec<String>,
    /// The command line was longer than the kernel keeps: its last argument is cut short.
    pub argv_cut: bool,
    /// Owner of the executed file, symlinks resolved, as the kernel saw it at exec.
    pub exe_owner: Option<u32>,
    pub env: Environment,
    pub boot_ns: u64,
}

/// The environment at exec, `NAME=value` pairs. It holds secret values on their way to be
/// fingerprinted, so its `Debug` shows names only; nothing else may print it.
#[derive(Clone, Default, PartialEq)]
pub struct Environment(pub Vec<(String, String)>);

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Environment {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// From the kernel's buffer: all of it, or a head and a tail cut at `cut` whose partial
    /// variables at the cuts are dropped.
    fn from_kernel(env: &[u8], len: usize, cut: usize) -> Self {
        let env = &env[..len.min(env.len())];
        let parts: Vec<&[u8]> = if cut == 0 || cut >= env.len() {
            vec![env]
        } else {
            let head = &env[..cut];
            let tail = &env[cut..];
            let head = &head[..head.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1)];
            let tail = &tail[tail
                .iter()
                .position(|&b| b == 0)
                .map_or(tail.len(), |i| i + 1)..];
            vec![head, tail]
        };
        let vars = parts
            .into_iter()
            .flat_map(|p| p.split(|&b| b == 0))
            .filter_map(|var| {
                let text = std::str::from_utf8(var).ok()?;
                let (name, value) = text.split_once('=')?;
                (!name.is_empty()).then(|| (name.to_owned(), value.to_owned()))
            })
            .collect();
        Self(vars)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Connect {
    pub pid: u32,
    pub uid: u32,
    pub comm: String,
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    /// The socket's cookie: later DNS and TLS payloads of the same socket carry it.
    pub cookie: u64,
    /// Refused, or would have been, by enforcement.
    pub enforcement: Option<Enforced>,
    /// The rule whose refusal it was: `out-of-scope-use` or `cross-context-reuse`.
    pub enforcement_rule: Option<RuleId>,
    pub boot_ns: u64,
}

/// What a payload is the start of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    /// A DNS message received by a socket that asked a DNS server.
    DnsAnswer,
    /// A DNS message that socket sent to a DNS server.
    DnsQuery,
    /// The first bytes of a TCP connection, starting a TLS handshake.
    TlsHello,
    /// The first bytes of a TCP connection, starting a plain HTTP request (its head).
    HttpRequest,
    /// One of the first writes of a process into a TLS connection, before encryption: `seq` is
    /// the write's index in the connection, `peer` is None.
    TlsPlaintext,
}

impl PayloadKind {
    /// What a request carries, credentials included: proof of use reads it, and its bytes are
    /// wiped once handled.
    pub fn is_request(self) -> bool {
        matches!(self, PayloadKind::HttpRequest | PayloadKind::TlsPlaintext)
    }
}

/// Bytes of one packet's transport payload on a watched socket. A ClientHello may carry
/// session tickets, so `Debug` shows sizes only.
#[derive(Clone, PartialEq)]
pub struct Payload {
    pub kind: PayloadKind,
    /// The process that asked (DNS) or connected (TLS); 0 when the kernel did not know.
    pub pid: u32,
    pub cookie: u64,
    pub protocol: Protocol,
    /// TCP sequence number of `data[0]`; 0 for UDP.
    pub seq: u32,
    /// Bytes the packet carried; more than `data.len()` when the kernel kept only the start.
    pub total_len: usize,
    pub data: Vec<u8>,
    /// The server an answer came from, or a query or hello went to; None when the kernel could
    /// not read it.
    pub peer: Option<IpAddr>,
    pub boot_ns: u64,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("kind", &self.kind)
            .field("pid", &self.pid)
            .field("cookie", &self.cookie)
            .field("seq", &self.seq)
            .field("total_len", &self.total_len)
            .field("len", &self.data.len())
            .field("peer", &self.peer)
            .finish()
    }
}

/// The protocol of an IP protocol number, as the connect hooks report it.
fn protocol_from_ip(number: u16) -> Protocol {
    match i32::from(number) {
        libc::IPPROTO_TCP => Protocol::Tcp,
        libc::IPPROTO_UDP => Protocol::Udp,
        _ => Protocol::Other,
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the event's header says it has.
    #[error("event of {len} bytes is shorter than its kind needs ({need})")]
    Short { len: usize, need: usize },
    /// A kind number this daemon does not know (kernel programs newer than the daemon).
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
}

/// Reads a `T` from the front of `bytes`, if there are enough.
fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: length checked; T is a repr(C) plain-data type; read_unaligned needs no alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A NUL-terminated (or full) byte buffer as text; invalid UTF-8 is replaced, not dropped.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn unset_as_none(value: u32) -> Option<u32> {
    (value != u32::MAX).then_some(value)
}

impl KernelEvent {
    /// When the kernel made it (boot clock).
    pub fn boot_ns(&self) -> u64 {
        match self {
            KernelEvent::Exec(e) => e.boot_ns,
            KernelEvent::Connect(c) => c.boot_ns,
            KernelEvent::Payload(p) => p.boot_ns,
            KernelEvent::Fork { boot_ns, .. }
            | KernelEvent::Exit { boot_ns, .. }
            | KernelEvent::FileAccess { boot_ns, .. } => *boot_ns,
        }
    }
}

/// An event's `decision` field, as the record says it.
fn enforced(decision: u32) -> Option<Enforced> {
    // The reason beside it (`BY_CONTEXT`) shows in the finding's rule, not here.
    match decision::outcome(u16::try_from(decision).ok()?) {
        decision::DENIED => Some(Enforced::Denied),
        decision::WOULD_DENY => Some(Enforced::WouldDeny),
        _ => None,
    }
}

/// The rule a refusal (or a dry run's) was for: the context's when the kernel says so
/// (`BY_CONTEXT`), else `otherwise`, the hook's own.
fn enforced_rule(decision: u32, otherwise: RuleId) -> Option<RuleId> {
    enforced(decision)?;
    Some(if decision & u32::from(decision::BY_CONTEXT) != 0 {
        RuleId::CrossContextReuse
    } else {
        otherwise
    })
}

pub fn decode(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    let header: EventHeader = read(bytes)?;
    let kind = EventKind::from_u32(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
    let (pid, boot_ns) = (header.tgid, header.boot_ns);
    Ok(match kind {
        EventKind::Exec => {
            let e: ExecEvent = read(bytes)?;
            let argv_len = (e.argv_len as usize).min(e.argv.len());
            KernelEvent::Exec(Exec {
                pid,
                ppid: e.ppid,
                uid: e.uid,
                loginuid: unset_as_none(e.loginuid),
                sessionid: unset_as_none(e.sessionid),
                start_boot_ns: e.start_boot_ns,
                comm: c_string(&e.comm),
                filename: c_string(&e.filename),
                argv: e.argv[..argv_len]
                    .split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
                // The kernel keeps at most ARGV_LEN - 1 bytes; a whole command line ends in NUL.
                argv_cut: argv_len == ARGV_LEN - 1 && e.argv[argv_len - 1] != 0,
                exe_owner: unset_as_none(e.exe_uid),
                env: Environment::from_kernel(&e.env, e.env_len as usize, e.env_cut as usize),
                boot_ns,
            })
        }
        EventKind::Fork => {
            let e: ForkEvent = read(bytes)?;
            KernelEvent::Fork {
                pid,
                ppid: e.ppid,
                start_boot_ns: e.start_boot_ns,
                boot_ns,
            }
        }
        EventKind::Exit => {
            let _: ExitEvent = read(bytes)?;
            KernelEvent::Exit { pid, boot_ns }
        }
        EventKind::FileAccess => {
            let e: FileAccessEvent = read(bytes)?;
            let hook = match e.hook {
                h if h == AccessHook::Mmap as u32 => Hook::Mmap,
                h if h == AccessHook::Open as u32 => Hook::Open,
                h if h == AccessHook::Move as u32 => Hook::Move,
                _ => Hook::Read,
            };
            KernelEvent::FileAccess {
                pid,
                file: FileKey::new(e.key.dev, e.key.ino),
                hook,
                uid: e.uid,
                comm: c_string(&e.comm),
                enforcement: enforced(e.decision),
                enforcement_rule: enforced_rule(e.decision, RuleId::UnexpectedReader),
                boot_ns,
            }
        }
        EventKind::Connect => {
            let e: ConnectEvent = read(bytes)?;
            let ip = ip_address(e.family, e.addr).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            KernelEvent::Connect(Connect {
                pid,
                uid: e.uid,
                comm: c_string(&e.comm),
                ip,
                port: e.port,
                protocol: protocol_from_ip(e.protocol),
                cookie: e.cookie,
                enforcement: enforced(u32::from(e.decision)),
                enforcement_rule: enforced_rule(u32::from(e.decision), RuleId::OutOfScopeUse),
                boot_ns,
            })
        }
        EventKind::DnsAnswer
        | EventKind::DnsQuery
        | EventKind::TlsHello
        | EventKind::HttpRequest
        | EventKind::TlsPlaintext => {
            let e: PayloadEvent = read(bytes)?;
            let len = (e.len as usize).min(e.data.len());
            KernelEvent::Payload(Payload {
                kind: match kind {
                    EventKind::DnsAnswer => PayloadKind::DnsAnswer,
                    EventKind::DnsQuery => PayloadKind::DnsQuery,
                    EventKind::HttpRequest => PayloadKind::HttpRequest,
                    EventKind::TlsPlaintext => PayloadKind::TlsPlaintext,
                    _ => PayloadKind::TlsHello,
                },
                pid,
                cookie: e.cookie,
                protocol: protocol_from_ip(e.protocol),
                seq: e.seq,
                total_len: e.total_len as usize,
                data: e.data[..len].to_vec(),
                peer: ip_address(e.family, e.peer),
                boot_ns,
            })
        }
    })
}

/// An address as the kernel programs send it: `family` AF_INET (IPv4 in the first 4 bytes) or
/// AF_INET6, in network byte order; None for another family.
fn ip_address(family: u16, bytes: [u8; 16]) -> Option<IpAddr> {
    match i32::from(family) {
        libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(bytes))),
        _ => None,
    }
}

/// Encoders for tests elsewhere in the crate: the bytes the kernel programs would send.
#[cfg(test)]
pub mod encode;

#[cfg(test)]
mod tests;
