//! Connections waiting for their name. A credential holder's TCP connect is reported once the
//! connection's first bytes are seen, because a TLS ClientHello names the server better than
//! any DNS answer can (the address may have come from /etc/hosts, a cache or DNS over HTTPS);
//! or after `WAIT_NS` when no such bytes come (plain protocols, refused connects).

use foldhash::HashMap;

use crate::record::Record;

/// How long a connection's records wait for its first bytes. A ClientHello follows the TCP
/// handshake, one round trip after connect; this covers intercontinental round trips.
pub const WAIT_NS: u64 = 1_000_000_000;

struct Parked {
    deadline_ns: u64,
    records: Vec<Record>,
}

/// Records held back per connection (by socket cookie).
#[derive(Default)]
pub struct Pending {
    parked: HashMap<u64, Parked>,
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

    /// Cookies whose wait is over at `now_ns` (all of them at `u64::MAX`), oldest first.
    pub fn due(&self, now_ns: u64) -> Vec<u64> {
        let mut due: Vec<(u64, u64)> = self
            .parked
            .iter()
            .filter(|(_, p)| p.deadline_ns <= now_ns)
            .map(|(cookie, p)| (p.deadline_ns, *cookie))
            .collect();
        due.sort_unstable();
        due.into_iter().map(|(_, cookie)| cookie).collect()
    }
}
