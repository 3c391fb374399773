//! Helpers the unit tests of several stages share.
use std::{
    fs,
    path::{Path, PathBuf},
};

/// The scenario folders under `src/<stage>/scenarios`, sorted.
pub fn scenario_dirs(stage: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(stage)
        .join("scenarios");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The DNS servers tests trust: the one recorded packets come from (`encode::SERVER`).
pub fn resolvers() -> crate::names::Resolvers {
    crate::names::Resolvers::only(vec![
        crate::decode::encode::SERVER.to_string().parse().unwrap(),
    ])
}

/// An empty scratch directory of this test process, named after `what`.
pub fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keytrail-{what}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// xorshift: a small deterministic generator, so a failure names its seed and case.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (which is not 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T: ?Sized>(&mut self, from: &[&'a T]) -> &'a T {
        from[self.below(from.len())]
    }
}

/// A DNS answer, as a server writes it: id `id`, question `name` (type A), one A record.
pub fn dns_answer(id: u16, name: &str, ip: [u8; 4]) -> Vec<u8> {
    use hickory_proto::{
        op::{Message, OpCode, Query},
        rr::{Name, RData, Record, RecordType, rdata::A},
    };
    let name = Name::from_ascii(name).unwrap();
    let mut m = Message::response(id, OpCode::Query);
    m.add_query(Query::query(name.clone(), RecordType::A));
    m.add_answer(Record::from_rdata(name, 60, RData::A(A(ip.into()))));
    m.to_vec().unwrap()
}

/// A DNS query, as a resolver writes it: id `id`, question `name` (type A).
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    use hickory_proto::{
        op::{Message, Query},
        rr::{Name, RecordType},
    };
    let mut m = Message::query();
    m.metadata.id = id;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}
