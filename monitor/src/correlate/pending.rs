//! Connections waiting for their name. A credential holder's TCP connect is reported once the
//! connection's first bytes are seen, because a TLS ClientHello names the server better than
//! any DNS answer can (the address may have come from /etc/hosts, a cache or DNS over HTTPS);
//! or after `WAIT_NS` when no such bytes come (plain protocols, refused connects).
//!
//! A named TLS connection of a process whose TLS writes keytrail reads (proof of use) waits
//! once more, for its first request, up to `REQUEST_WAIT_NS`: the request says which of the
//! credentials the process holds went there.
//!
//! A hello may come later than that (a client that waits before it speaks): the uses released
//! without it are kept for `LATE_NS`, and a late server name that differs from the name DNS
//! gave is reported then, as it would have been in time.

use foldhash::HashMap;

use crate::record::Record;

/// How long a connection's records wait for its first bytes. A ClientHello follows the TCP
/// handshake, one round trip after connect; this covers intercontinental round trips.
pub const WAIT_NS: u64 = 1_000_000_000;
/// How long a named TLS connection's records wait for its first request.
pub const REQUEST_WAIT_NS: u64 = 1_000_000_000;
/// How long the uses of a connection released without its first bytes wait for a late hello.
pub const LATE_NS: u64 = 30_000_000_000;
/// Connections whose uses wait for a late hello at once; past it, the oldest is forgotten.
const MAX_LATE: usize = 4096;

struct Parked {
    deadline_ns: u64,
    records: Vec<Record>,
}

/// Records held back per connection (by socket cookie).
#[derive(Default)]
pub struct Pending {
    parked: HashMap<u64, Parked>,
    /// Uses released without a name from the connection's first bytes, by cookie, until when
    /// a late hello is still compared.
    late: HashMap<u64, Parked>,
    /// Named TLS connections waiting for their first request, by cookie.
    awaiting_request: HashMap<u64, Parked>,
}

impl Pending {
    /// Holds `records` about the connection `cookie`, made at `connected_ns`, until it is named
    /// or `WAIT_NS` passed since it was made.
    pub fn park(&mut self, cookie: u64, connected_ns: u64, records: Vec<Record>) {
        self.parked
            .entry(cookie)
            .or_insert_with(|| Parked {
                deadline_ns: connected_ns.saturating_add(WAIT_NS),
                records: Vec::new(),
            })
            .records
            .extend(records);
    }

    /// Holds `records` about the named TLS connection `cookie` until its request comes or
    /// `deadline_ns`.
    pub fn await_request(&mut self, cookie: u64, deadline_ns: u64, records: Vec<Record>) {
        self.awaiting_request
            .entry(cookie)
            .or_insert_with(|| Parked {
                deadline_ns,
                records: Vec::new(),
            })
            .records
            .extend(records);
    }

    /// The records of `cookie` that waited for its request.
    pub fn request(&mut self, cookie: u64) -> Vec<Record> {
        self.awaiting_request
            .remove(&cookie)
            .map(|p| p.records)
            .unwrap_or_default()
    }

    /// The records of `cookie`, with the endpoint named `server_name` when there is one
    /// (`answered`: DNS told the process that name is at the address).
    pub fn release(
        &mut self,
        cookie: u64,
        server_name: Option<&str>,
        answered: bool,
    ) -> Vec<Record> {
        let Some(parked) = self.parked.remove(&cookie) else {
            return Vec::new();
        };
        let mut records = parked.records;
        if let Some(name) = server_name {
            for record in &mut records {
                if let Record::Connection { endpoint, .. }
                | Record::CredentialUse { endpoint, .. } = record
                {
                    endpoint.name_by_tls(name, answered);
                }
            }
        }
        records
    }

    /// The records of `cookie`, whose wait is over at `now_ns` without its first bytes (its
    /// uses are kept for a late hello, `late_hello`) or without its first request.
    pub fn expire(&mut self, cookie: u64, now_ns: u64) -> Vec<Record> {
        if let Some(parked) = self.awaiting_request.remove(&cookie) {
            return parked.records; // named already: no hello is to come
        }
        let records = self.release(cookie, None, false);
        let uses: Vec<Record> = records
            .iter()
            .filter(|r| matches!(r, Record::CredentialUse { .. }))
            .cloned()
            .collect();
        if !uses.is_empty() && now_ns != u64::MAX {
            self.late.retain(|_, p| p.deadline_ns > now_ns);
            if self.late.len() >= MAX_LATE
                && let Some(oldest) = self
                    .late
                    .iter()
                    .min_by_key(|(_, p)| p.deadline_ns)
                    .map(|(cookie, _)| *cookie)
            {
                self.late.remove(&oldest);
            }
            self.late.insert(
                cookie,
                Parked {
                    deadline_ns: now_ns.saturating_add(LATE_NS),
                    records: uses,
                },
            );
        }
        records
    }

    /// A hello that came after the records of `cookie` went out: its uses again, when the
    /// server name it gives differs from the name DNS gave them (`host_claimed`). A hello that
    /// agrees, or names an unnamed connection, changes no verdict and gives nothing.
    pub fn late_hello(&mut self, cookie: u64, server_name: &str, answered: bool) -> Vec<Record> {
        let Some(parked) = self.late.remove(&cookie) else {
            return Vec::new();
        };
        parked
            .records
            .into_iter()
            .filter_map(|mut record| match &mut record {
                Record::CredentialUse { endpoint, .. } if endpoint.host_verified => {
                    endpoint.name_by_tls(server_name, answered);
                    endpoint.host_claimed.is_some().then_some(record)
                }
                _ => None,
            })
            .collect()
    }

    /// Cookies whose wait is over at `now_ns` (all of them at `u64::MAX`), oldest first.
    pub fn due(&self, now_ns: u64) -> Vec<u64> {
        let mut due: Vec<(u64, u64)> = self
            .parked
            .iter()
            .chain(&self.awaiting_request)
            .filter(|(_, p)| p.deadline_ns <= now_ns)
            .map(|(cookie, p)| (p.deadline_ns, *cookie))
            .collect();
        due.sort_unstable();
        due.into_iter().map(|(_, cookie)| cookie).collect()
    }
}
