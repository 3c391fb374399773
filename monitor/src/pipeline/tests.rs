//! The whole pipeline on recorded kernel events, without a kernel: the scenarios beside this
//! file (scenarios/). Each directory holds
//! - files/: the credential files, copied to a scratch directory and watched there (kind from
//!   the file name, as `--watch PATH` guesses it);
//! - events.ndjson: kernel events as the decoder gives them, one per line, in a readable form
//!   (`{"exec": {...}}`, `{"read": {"file": ".netrc", ...}}`); times are milliseconds since boot;
//! - expected.ndjson: every record that must come out, projected to the fields that matter
//!   (see `project`), in any order; nothing else may come out.
//!
//! Lines are parsed strictly: an unknown field is an error, not a default.
use std::{
    collections::BTreeMap,
    fs,
    net::IpAddr,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use hickory_proto::{
    op::{Message, OpCode, Query},
    rr::{Name, RData, Record as DnsRecord, RecordType, rdata::A},
};
use monitor_common::FileKey;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Pipeline;
use crate::{
    catalog::{Catalog, Source, kernel_dev},
    clock::Clock,
    decode::{Connect, Environment, Exec, KernelEvent, Payload, PayloadKind},
    fingerprint::Fingerprinter,
    policy::Policy,
    process::ProcessTracker,
    record::Record,
    redact::Secrets,
    vocab::{Enforced, FindingAction, Hook, Kind, Protocol},
};

const MS: u64 = 1_000_000;

/// One recorded kernel event.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Recorded {
    Exec {
        pid: u32,
        ppid: u32,
        uid: u32,
        loginuid: Option<u32>,
        #[serde(default)]
        sessionid: Option<u32>,
        comm: String,
        exe: String,
        #[serde(default)]
        argv: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        at_ms: u64,
    },
    Fork {
        pid: u32,
        ppid: u32,
        at_ms: u64,
    },
    Exit {
        pid: u32,
        at_ms: u64,
    },
    /// A watched file's first access: `file` names it in files/.
    Read {
        pid: u32,
        file: String,
        #[serde(default = "read_hook")]
        hook: Hook,
        uid: u32,
        comm: String,
        /// What read denial made of the open (`denied`, `would-deny`).
        #[serde(default)]
        enforcement: Option<Enforced>,
        at_ms: u64,
    },
    Connect {
        pid: u32,
        ip: IpAddr,
        port: u16,
        #[serde(default = "tcp")]
        protocol: Protocol,
        uid: u32,
        comm: String,
        at_ms: u64,
    },
    /// A DNS answer received by `pid`: `name` is at `ip`.
    DnsAnswer {
        pid: u32,
        name: String,
        ip: std::net::Ipv4Addr,
        at_ms: u64,
    },
}

fn read_hook() -> Hook {
    Hook::Read
}

fn tcp() -> Protocol {
    Protocol::Tcp
}

impl Recorded {
    /// The query a recorded DNS answer answers, sent just before it by the same socket (a
    /// recorded answer stands for an exchange the process made).
    fn query(&self) -> Option<KernelEvent> {
        let Recorded::DnsAnswer {
            pid, name, at_ms, ..
        } = self
        else {
            return None;
        };
        let mut m = Message::query();
        m.metadata.id = 1;
        m.add_query(Query::query(
            Name::from_ascii(name).expect("a DNS name"),
            RecordType::A,
        ));
        let data = m.to_vec().expect("the query encodes");
        Some(dns_payload(PayloadKind::DnsQuery, *pid, data, *at_ms))
    }

    fn into_event(self, files: &BTreeMap<String, FileKey>) -> KernelEvent {
        match self {
            Recorded::Exec {
                pid,
                ppid,
                uid,
                loginuid,
                sessionid,
                comm,
                exe,
                argv,
                env,
                at_ms,
            } => KernelEvent::Exec(Exec {
                pid,
                ppid,
                uid,
                loginuid,
                sessionid,
                // A process started at its exec, as far as the tracker can tell.
                start_boot_ns: at_ms * MS,
                comm,
                filename: exe,
                argv,
                argv_cut: false,
                exe_owner: None,
                env: Environment(env.into_iter().collect()),
                boot_ns: at_ms * MS,
            }),
            Recorded::Fork { pid, ppid, at_ms } => KernelEvent::Fork {
                pid,
                ppid,
                start_boot_ns: at_ms * MS,
                boot_ns: at_ms * MS,
            },
            Recorded::Exit { pid, at_ms } => KernelEvent::Exit {
                pid,
                boot_ns: at_ms * MS,
            },
            Recorded::Read {
                pid,
                file,
                hook,
                uid,
                comm,
                enforcement,
                at_ms,
            } => KernelEvent::FileAccess {
                pid,
                file: *files
                    .get(&file)
                    .unwrap_or_else(|| panic!("{file} is not in files/")),
                hook,
                uid,
                comm,
                enforcement,
                // A recorded refusal is read denial's own.
                enforcement_rule: enforcement.map(|_| crate::vocab::RuleId::UnexpectedReader),
                boot_ns: at_ms * MS,
            },
            Recorded::Connect {
                pid,
                ip,
                port,
                protocol,
                uid,
                comm,
                at_ms,
            } => KernelEvent::Connect(Connect {
                pid,
                uid,
                comm,
                ip,
                port,
                protocol,
                cookie: 0, // a recorded connection does not wait for its first bytes
                enforcement: None,
                enforcement_rule: None,
                boot_ns: at_ms * MS,
            }),
            Recorded::DnsAnswer {
                pid,
                name,
                ip,
                at_ms,
            } => {
                let name = Name::from_ascii(&name).expect("a DNS name");
                let mut m = Message::response(1, OpCode::Query);
                m.add_query(Query::query(name.clone(), RecordType::A));
                m.add_answer(DnsRecord::from_rdata(name, 300, RData::A(A(ip))));
                let data = m.to_vec().expect("the answer encodes");
                dns_payload(PayloadKind::DnsAnswer, pid, data, at_ms)
            }
        }
    }
}

/// A DNS message over UDP on socket 1 of `pid`.
fn dns_payload(kind: PayloadKind, pid: u32, data: Vec<u8>, at_ms: u64) -> KernelEvent {
    KernelEvent::Payload(Payload {
        kind,
        pid,
        cookie: 1,
        protocol: Protocol::Udp,
        seq: 0,
        total_len: data.len(),
        data,
        peer: Some(crate::decode::encode::SERVER.into()),
        boot_ns: at_ms * MS,
    })
}

/// What a record is compared on.
fn project(record: &Record) -> Option<Value> {
    let file = |path: &str| {
        Path::new(path)
            .file_name()
            .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
    };
    let endpoint = |e: &crate::record::EndpointRef| format!("{}:{}", e.ip, e.port);
    let mut projected = match record {
        Record::CredentialAccess {
            credential,
            process,
            hook,
            enforcement,
            ..
        } => {
            let mut access = json!({"type": "credential_access", "file": file(&credential.path),
                "pid": process.pid, "hook": hook, "context": process.context});
            if let Some(enforced) = enforcement {
                access["enforcement"] = json!(enforced);
            }
            access
        }
        Record::Connection {
            process,
            endpoint: e,
            ..
        } => json!({"type": "connection", "pid": process.pid, "endpoint": endpoint(e),
            "host": e.host}),
        Record::CredentialUse {
            credential,
            process,
            endpoint: e,
            via,
            reader,
            ..
        } => json!({"type": "credential_use", "file": file(&credential.path),
            "pid": process.pid, "endpoint": endpoint(e), "host": e.host, "via": via,
            "reader": reader.pid}),
        Record::Finding(f) => json!({"type": "finding", "rule": f.rule,
            "file": f.credential.as_ref().map(|c| file(&c.path)), "pid": f.process.pid,
            "severity": f.severity, "context": f.context, "count": f.count}),
        Record::Ready { .. } | Record::Stats { .. } => return None,
    };
    // Said only where enforcement acted, so the other scenarios need not say "reported".
    if let Record::Finding(f) = record
        && f.action != FindingAction::Reported
    {
        projected["action"] = json!(f.action);
    }
    Some(projected)
}

fn scenarios() -> Vec<PathBuf> {
    crate::testing::scenario_dirs("pipeline")
}

/// Runs one scenario: its records, projected.
fn run(dir: &Path) -> Vec<Value> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let scratch =
        std::env::temp_dir().join(format!("keytrail-pipeline-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).unwrap();
    let policy = Arc::new(Policy::embedded());
    let mut sources = Vec::new();
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir.join("files")).expect("files/ exists") {
        let from = entry.unwrap().path();
        let file_name = from.file_name().unwrap().to_string_lossy().into_owned();
        let to = scratch.join(&file_name);
        fs::copy(&from, &to).unwrap();
        // The scenarios' user is uid 1000, and owns its files: else every use is a collapse.
        if std::os::unix::fs::chown(&to, Some(1000), Some(1000)).is_err() {
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            assert_eq!(
                uid, 1000,
                "run as root or as uid 1000: the scenarios' files are uid 1000's"
            );
        }
        let meta = fs::metadata(&to).unwrap();
        files.insert(file_name, FileKey::new(kernel_dev(meta.dev()), meta.ino()));
        let path = to.display().to_string();
        sources.push(Source::watched(path.clone(), Kind::guess(&path), &policy));
    }
    let mut catalog = Catalog::new(sources, Secrets::new(Fingerprinter::with_key(9)));
    catalog.resolve(&policy);
    let mut pipeline = Pipeline::new(
        ProcessTracker::new(100, None),
        Clock::fixed(0),
        Arc::clone(&policy),
        crate::testing::resolvers(),
    );
    let mut out = Vec::new();
    let events = fs::read_to_string(dir.join("events.ndjson")).unwrap();
    for (n, line) in events.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let recorded: Recorded = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{name}/events.ndjson:{}: {e}", n + 1));
        if let Some(query) = recorded.query() {
            pipeline.handle(&query, &mut catalog, &mut out);
        }
        pipeline.handle(&recorded.into_event(&files), &mut catalog, &mut out);
    }
    pipeline.finish(&mut out);
    let _ = fs::remove_dir_all(&scratch);
    out.iter().filter_map(project).collect()
}

fn sorted(mut values: Vec<Value>) -> Vec<Value> {
    values.sort_by_key(|v| v.to_string());
    values
}

#[test]
fn every_kernel_event_scenario_gives_exactly_its_expected_records() {
    let dirs = scenarios();
    assert!(dirs.len() >= 5, "scenarios found: {dirs:?}");
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let expected = fs::read_to_string(dir.join("expected.ndjson")).unwrap();
        let expected: Vec<Value> = expected
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
            .collect();
        let got = run(&dir);
        assert_eq!(
            sorted(got.clone()),
            sorted(expected),
            "scenario {name}: got\n{}",
            got.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn a_recorded_event_with_an_unknown_field_is_refused() {
    let err = serde_json::from_str::<Recorded>(r#"{"exit": {"pid": 1, "at_ms": 1, "code": 0}}"#)
        .err()
        .expect("an unknown field is an error");
    assert!(err.to_string().contains("code"), "{err}");
}
