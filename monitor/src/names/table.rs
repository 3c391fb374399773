//! Address -> host name, from DNS answers, per asker (the process that asked). Bounded: entries expire with their TTL
//! (with a floor, see `MIN_TTL`), and past `capacity` the oldest answers go first.
use std::{collections::HashMap, net::IpAddr, sync::Arc, time::Duration};

/// Answers with TTL 0 or 1 are common behind CDNs, and the connect they lead to comes just
/// after: keep every answer at least this long so that connect is still named.
pub const MIN_TTL: Duration = Duration::from_secs(30);
/// Longer TTLs are cut to this: the table is for connects that follow answers, not a cache.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Names kept per address (several names behind one CDN address is common).
const NAMES_PER_ADDRESS: usize = 8;

#[derive(Clone, Debug)]
struct Entry {
    name: Arc<str>,
    /// The process whose socket received the answer.
    asker: u32,
    seen_ns: u64,
    expires_ns: u64,
}

pub struct NameTable {
    by_addr: HashMap<IpAddr, Vec<Entry>>,
    len: usize,
    capacity: usize,
}

impl NameTable {
    pub fn new(capacity: usize) -> Self {
        Self {
            by_addr: HashMap::new(),
            len: 0,
            capacity,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Remembers that `asker` was told `addr` is `name` at `now_ns`, for `ttl` seconds.
    pub fn learn(&mut self, addr: IpAddr, name: &str, asker: u32, ttl: u32, now_ns: u64) {
        let ttl = Duration::from_secs(ttl.into()).clamp(MIN_TTL, MAX_TTL);
        let entries = self.by_addr.entry(addr).or_default();
        let before = entries.len();
        entries.retain(|e| !(e.asker == asker && *e.name == *name));
        if entries.len() >= NAMES_PER_ADDRESS {
            entries.remove(0); // oldest first: entries are kept in the order they were seen
        }
        entries.push(Entry {
            name: name.into(),
            asker,
            seen_ns: now_ns,
            expires_ns: now_ns.saturating_add(ttl.as_nanos() as u64),
        });
        self.len = self.len + entries.len() - before;
        if self.len > self.capacity {
            self.shrink(now_ns);
        }
    }

    /// The name `addr` had for the first of `askers` that was told one (the connecting
    /// process, then its ancestors); none from other processes' answers, which another user
    /// could have asked for to name this one's address.
    /// Whether one of `askers` was told, in an answer still live, that `name` is at `addr`:
    /// several names may share an address (a CDN), and the newest is only the one `lookup`
    /// gives.
    pub fn answered(&self, addr: IpAddr, name: &str, askers: &[u32], now_ns: u64) -> bool {
        self.by_addr.get(&addr).is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e.expires_ns > now_ns && &*e.name == name && askers.contains(&e.asker))
        })
    }

    pub fn lookup(&self, addr: IpAddr, askers: &[u32], now_ns: u64) -> Option<Arc<str>> {
        let live: Vec<&Entry> = self
            .by_addr
            .get(&addr)?
            .iter()
            .filter(|e| e.expires_ns > now_ns)
            .collect();
        askers.iter().find_map(|&r| {
            live.iter()
                .rev()
                .find(|e| e.asker == r)
                .map(|e| Arc::clone(&e.name))
        })
    }

    /// Drops expired answers; if that is not enough, the oldest until 7/8 of capacity is used.
    pub fn shrink(&mut self, now_ns: u64) {
        for entries in self.by_addr.values_mut() {
            entries.retain(|e| e.expires_ns > now_ns);
        }
        self.by_addr.retain(|_, entries| !entries.is_empty());
        self.len = self.by_addr.values().map(Vec::len).sum();
        let target = self.capacity - self.capacity / 8;
        if self.len <= target {
            return;
        }
        let mut seen: Vec<u64> = self.by_addr.values().flatten().map(|e| e.seen_ns).collect();
        seen.sort_unstable();
        let cutoff = seen[self.len - target];
        for entries in self.by_addr.values_mut() {
            entries.retain(|e| e.seen_ns >= cutoff);
        }
        self.by_addr.retain(|_, entries| !entries.is_empty());
        self.len = self.by_addr.values().map(Vec::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_answers_the_process_or_its_ancestors_received_name_its_addresses() {
        let mut t = NameTable::new(100);
        t.learn(ip("10.0.0.1"), "a.example", 7, 300, S);
        t.learn(ip("10.0.0.1"), "b.example", 8, 300, 2 * S);
        let at = 3 * S;
        assert_eq!(
            t.lookup(ip("10.0.0.1"), &[7], at).as_deref(),
            Some("a.example")
        );
        assert_eq!(
            t.lookup(ip("10.0.0.1"), &[9, 8], at).as_deref(),
            Some("b.example")
        );
        assert_eq!(
            t.lookup(ip("10.0.0.1"), &[9], at),
            None,
            "another process's answer names nothing of this one's"
        );
        t.learn(ip("10.0.0.1"), "c.example", 7, 300, 4 * S);
        assert_eq!(
            t.lookup(ip("10.0.0.1"), &[7], 5 * S).as_deref(),
            Some("c.example")
        );
        assert_eq!(t.lookup(ip("10.0.0.2"), &[7], at), None);
    }

    #[test]
    fn answers_expire_after_their_ttl_with_a_floor() {
        let mut t = NameTable::new(100);
        t.learn(ip("::1"), "short.example", 1, 0, 0);
        t.learn(ip("::2"), "long.example", 1, 3600, 0);
        let floor = MIN_TTL.as_nanos() as u64;
        assert!(t.lookup(ip("::1"), &[1], floor - 1).is_some());
        assert!(t.lookup(ip("::1"), &[1], floor).is_none());
        assert!(t.lookup(ip("::2"), &[1], 3599 * S).is_some());
        t.shrink(floor);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn memory_is_bounded_by_dropping_the_oldest() {
        let mut t = NameTable::new(64);
        for i in 0..1000u32 {
            let addr = IpAddr::from(i.to_be_bytes());
            t.learn(addr, "x.example", 1, 300, u64::from(i));
            assert!(t.len() <= 64);
        }
        assert!(
            t.lookup(IpAddr::from(999u32.to_be_bytes()), &[1], 1000)
                .is_some()
        );
        assert!(
            t.lookup(IpAddr::from(0u32.to_be_bytes()), &[1], 1000)
                .is_none()
        );
        let same = ip("10.9.9.9");
        for i in 0..20 {
            t.learn(same, &format!("n{i}.example"), 1, 300, 2000);
        }
        assert_eq!(t.by_addr[&same].len(), NAMES_PER_ADDRESS);
    }
}
