//! Naming on recorded event streams (the bytes the kernel sends, decoded): DNS answers name
//! connects, a ClientHello's server name wins over DNS, and a connection's records wait for it.
use std::{fs, os::unix::fs::MetadataExt};

use monitor_common::{AccessHook, EventKind};

use super::*;
use crate::{
    catalog::{Source, kernel_dev},
    decode::{decode, encode},
    fingerprint::Fingerprinter,
    record::Proof,
    redact::Secrets,
    vocab::Kind,
};

const HELLO: &[u8] = include_bytes!("../names/testdata/client_hello_openssl.bin");
const COOKIE: u64 = 0x1000 + 10; // encode::connect4's cookie for pid 10

struct Fixture {
    correlator: Correlator,
    catalog: Catalog,
    netrc: FileKey,
    dir: std::path::PathBuf,
}

impl Fixture {
    /// A netrc for api.github.com, and pid 10 (python3) running.
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("keytrail-naming-{test}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".netrc");
        fs::write(
            &path,
            "machine api.github.com login bot password naming-secret\n",
        )
        .unwrap();
        let meta = fs::metadata(&path).unwrap();
        let policy = Arc::new(Policy::embedded());
        let source = Source::watched(path.display().to_string(), Kind::Netrc, &policy);
        let mut catalog = Catalog::new(vec![source], Secrets::new(Fingerprinter::with_key(5)));
        catalog.resolve(&policy);
        let mut f = Self {
            correlator: Correlator::new(
                ProcessTracker::new(100, None),
                Clock::fixed(0),
                policy,
                crate::testing::resolvers(),
            ),
            catalog,
            netrc: FileKey::new(kernel_dev(meta.dev()), meta.ino()),
            dir,
        };
        f.feed(&encode::exec(10, 1, "python3", "/usr/bin/python3", &[]));
        f
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<Record> {
        let mut out = Vec::new();
        let event = decode(bytes).unwrap();
        self.correlator.handle(&event, &mut self.catalog, &mut out);
        out
    }

    fn read_netrc(&mut self) -> Vec<Record> {
        let (dev, ino) = (self.netrc.dev, self.netrc.ino);
        self.feed(&encode::file_access(10, dev, ino, AccessHook::Read))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The query pid 10's socket 77 sent for `name`, which `dns_answer` then answers.
fn dns_query(name: &str) -> Vec<u8> {
    let query = crate::testing::dns_query(1, name);
    encode::payload(EventKind::DnsQuery, 10, 77, 17, 0, &query)
}

fn dns_answer(name: &str, ip: [u8; 4]) -> Vec<u8> {
    let answer = crate::testing::dns_answer(1, name, ip);
    encode::payload(EventKind::DnsAnswer, 10, 77, 17, 0, &answer)
}

/// (type, host, host source) of each record that has an endpoint.
fn endpoints(records: &[Record]) -> Vec<(&'static str, Option<String>, Option<HostSource>)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Connection { endpoint, .. } => Some(("connection", endpoint)),
            Record::CredentialUse { endpoint, .. } => Some(("use", endpoint)),
            _ => None,
        })
        .map(|(kind, e)| (kind, e.host.clone(), e.host_source))
        .collect()
}

/// A whole ClientHello for api.github.com on pid 10's connection.
fn hello() -> Vec<u8> {
    encode::payload(EventKind::TlsHello, 10, COOKIE, 6, 1, HELLO)
}

/// The claimed server name of each record that has an endpoint.
fn claimed(records: &[Record]) -> Vec<Option<&str>> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Connection { endpoint, .. } | Record::CredentialUse { endpoint, .. } => {
                Some(endpoint.host_claimed.as_deref())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_dns_answer_names_the_connect_that_follows_once_its_wait_is_over() {
    let mut f = Fixture::new("dns");
    f.feed(&dns_query("api.github.com."));
    f.feed(&dns_answer("api.github.com.", [127, 0, 0, 1]));
    f.read_netrc();
    assert!(
        f.feed(&encode::connect4(10, [127, 0, 0, 1], 443))
            .is_empty(),
        "waits"
    );
    let mut out = Vec::new();
    f.correlator.tick(3_000 + pending::WAIT_NS - 1, &mut out);
    assert!(out.is_empty(), "still waiting");
    f.correlator.tick(3_000 + pending::WAIT_NS, &mut out);
    let dns = Some(HostSource::Dns);
    let host = Some("api.github.com".to_owned());
    assert_eq!(
        endpoints(&out),
        vec![("connection", host.clone(), dns), ("use", host, dns)]
    );
}

#[test]
fn a_different_server_name_is_kept_as_claimed_beside_dns_and_releases_the_connection_at_once() {
    let mut f = Fixture::new("sni");
    f.feed(&dns_query("cdn.example."));
    f.feed(&dns_answer("cdn.example.", [127, 0, 0, 1]));
    f.read_netrc();
    assert!(
        f.feed(&encode::connect4(10, [127, 0, 0, 1], 443))
            .is_empty()
    );
    let (head, tail) = HELLO.split_at(100);
    let hello =
        |seq: u32, data: &[u8]| encode::payload(EventKind::TlsHello, 10, COOKIE, 6, seq, data);
    assert!(
        f.feed(&hello(1, head)).is_empty(),
        "a partial hello settles nothing"
    );
    let out = f.feed(&hello(101, tail));
    // The address came from the answer for cdn.example; the hello only says api.github.com.
    let dns = Some(HostSource::Dns);
    let host = Some("cdn.example".to_owned());
    assert_eq!(
        endpoints(&out),
        vec![("connection", host.clone(), dns), ("use", host, dns)]
    );
    assert_eq!(claimed(&out), [Some("api.github.com"); 2]);
}

/// A client that waits more than `WAIT_NS` before its hello: the use went out named by DNS,
/// and the late server name that differs goes out then, claimed beside it, as it would have
/// in time. A late hello that agrees says nothing new.
#[test]
fn a_late_hello_that_differs_from_dns_is_reported_when_it_comes() {
    let mut f = Fixture::new("late");
    f.feed(&dns_query("cdn.example."));
    f.feed(&dns_answer("cdn.example.", [127, 0, 0, 1]));
    f.read_netrc();
    assert!(
        f.feed(&encode::connect4(10, [127, 0, 0, 1], 443))
            .is_empty()
    );
    let mut out = Vec::new();
    f.correlator.tick(3_000 + pending::WAIT_NS, &mut out);
    assert_eq!(claimed(&out), [None, None], "released with DNS alone");
    let out = f.feed(&hello());
    let dns = Some(HostSource::Dns);
    assert_eq!(
        endpoints(&out),
        vec![("use", Some("cdn.example".to_owned()), dns)]
    );
    assert_eq!(claimed(&out), [Some("api.github.com")]);
    assert!(f.feed(&hello()).is_empty(), "compared once");
}

#[test]
fn a_read_on_a_waiting_connection_goes_out_with_it_and_uses_are_reported_once() {
    let mut f = Fixture::new("held");
    assert!(
        f.feed(&encode::connect4(10, [127, 0, 0, 1], 443))
            .is_empty()
    );
    let read = f.read_netrc();
    assert!(
        matches!(read[..], [Record::CredentialAccess { .. }]),
        "{read:?}"
    );
    let out = f.feed(&hello());
    let sni = Some(HostSource::TlsSni);
    let host = Some("api.github.com".to_owned());
    assert_eq!(endpoints(&out), vec![("use", host.clone(), sni)]);
    assert!(matches!(
        out[0],
        Record::CredentialUse {
            via: Via::HeldConnection,
            ..
        }
    ));
    // The same connection again: a connection record, but the use is not repeated.
    f.feed(&encode::connect4(10, [127, 0, 0, 1], 443));
    let out = f.feed(&hello());
    assert_eq!(endpoints(&out), vec![("connection", host, sni)]);
}

#[test]
fn a_server_name_dns_also_gave_for_the_address_is_verified_not_claimed() {
    let mut f = Fixture::new("cdn");
    // Two names at one address, as on a CDN; the newer answer is the lookup's name.
    f.feed(&dns_query("api.github.com."));
    f.feed(&dns_answer("api.github.com.", [127, 0, 0, 1]));
    f.feed(&dns_query("cdn.example."));
    f.feed(&dns_answer("cdn.example.", [127, 0, 0, 1]));
    f.read_netrc();
    assert!(
        f.feed(&encode::connect4(10, [127, 0, 0, 1], 443))
            .is_empty()
    );
    let out = f.feed(&hello());
    let dns = Some(HostSource::Dns);
    let host = Some("api.github.com".to_owned());
    assert_eq!(
        endpoints(&out),
        vec![("connection", host.clone(), dns), ("use", host, dns)]
    );
    assert_eq!(claimed(&out), [None; 2]);
}

/// A process whose TLS writes keytrail reads: its named connection's records wait for the
/// request, which proves the use (with the request's host and path); without a request they
/// go out inferred once the wait is over.
#[test]
fn a_tls_connection_waits_for_its_request_which_proves_the_use() {
    let mut f = Fixture::new("tls_request");
    f.correlator.writes_tls(10);
    f.read_netrc();
    assert!(
        f.feed(&encode::connect4(10, [127, 0, 0, 1], 443))
            .is_empty()
    );
    assert!(f.feed(&hello()).is_empty(), "named, waits for the request");
    // Basic bot:naming-secret, as curl -n sends it.
    let head = b"GET /user HTTP/1.1\r\nHost: api.github.com\r\nAuthorization: Basic Ym90Om5hbWluZy1zZWNyZXQ=\r\n\r\n";
    let out = f.feed(&encode::payload(
        EventKind::TlsPlaintext,
        10,
        COOKIE,
        6,
        0,
        head,
    ));
    let proven: Vec<_> = out
        .iter()
        .filter_map(|r| match r {
            Record::CredentialUse { proof, request, .. } => Some((*proof, request.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(proven.len(), 1, "{out:?}");
    assert_eq!(proven[0].0, Proof::Sent);
    let request = proven[0].1.clone().unwrap();
    assert_eq!(
        (request.host.as_deref(), request.path.as_str()),
        (Some("api.github.com"), "/user")
    );

    // Another connection whose request never comes: inferred, after the wait.
    let mut f = Fixture::new("tls_no_request");
    f.correlator.writes_tls(10);
    f.read_netrc();
    f.feed(&encode::connect4(10, [127, 0, 0, 1], 443));
    f.feed(&hello());
    let mut out = Vec::new();
    f.correlator
        .tick(2_500 + pending::REQUEST_WAIT_NS - 1, &mut out);
    assert!(out.is_empty(), "still waiting: {out:?}");
    f.correlator
        .tick(2_500 + pending::REQUEST_WAIT_NS, &mut out);
    assert!(
        out.iter().any(|r| matches!(
            r,
            Record::CredentialUse {
                proof: Proof::Inferred,
                ..
            }
        )),
        "{out:?}"
    );
}

/// A client often exits before its connect is handled, so keytrail cannot tell from its
/// mappings whether its writes are read, and waits for its request anyway: its exit, which the
/// kernel reports after every write it made, ends the wait at once.
#[test]
fn a_process_exit_ends_its_connections_wait_for_a_request() {
    let mut f = Fixture::new("tls_exit");
    f.correlator.writes_tls(10);
    f.read_netrc();
    f.feed(&encode::connect4(10, [127, 0, 0, 1], 443));
    assert!(f.feed(&hello()).is_empty(), "named, waits for the request");
    let out = f.feed(&encode::exit(10, 3_000));
    assert!(
        out.iter().any(|r| matches!(
            r,
            Record::CredentialUse {
                proof: Proof::Inferred,
                ..
            }
        )),
        "{out:?}"
    );
    let mut later = Vec::new();
    f.correlator
        .tick(2_500 + pending::REQUEST_WAIT_NS, &mut later);
    assert!(later.is_empty(), "released once: {later:?}");
}
