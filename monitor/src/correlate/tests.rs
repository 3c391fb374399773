//! The correlator on recorded event streams: which records each lineage produces.
use std::{fs, os::unix::fs::MetadataExt, path::PathBuf};

use super::*;
use crate::{
    catalog::{Catalog, Source, kernel_dev},
    decode::{Environment, Exec},
    fingerprint::Fingerprinter,
    redact::Secrets,
    vocab::{Hook, Kind, Protocol},
};

/// A catalog with one real file (the catalog resolves identities from the filesystem).
fn catalog_with_netrc(test: &str) -> (Catalog, FileKey, PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("keytrail-correlate-{test}-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(".netrc");
    fs::write(
        &path,
        "machine example.com login bot password netrc-secret-1\nmachine 127.0.0.1\n",
    )
    .unwrap();
    let meta = fs::metadata(&path).unwrap();
    let policy = Policy::embedded();
    let source = Source::watched(path.display().to_string(), Kind::Netrc, &policy);
    let mut catalog = Catalog::new(vec![source], Secrets::new(Fingerprinter::with_key(3)));
    catalog.resolve(&policy);
    (
        catalog,
        FileKey::new(kernel_dev(meta.dev()), meta.ino()),
        path,
    )
}

fn exec(pid: u32, ppid: u32, comm: &str) -> KernelEvent {
    exec_env(pid, ppid, comm, &[])
}

fn exec_env(pid: u32, ppid: u32, comm: &str, env: &[(&str, &str)]) -> KernelEvent {
    KernelEvent::Exec(Exec {
        pid,
        ppid,
        uid: 1000,
        loginuid: Some(1000),
        sessionid: Some(7),
        start_boot_ns: pid as u64 * 1_000_000_000,
        comm: comm.into(),
        filename: format!("/usr/bin/{comm}"),
        argv: vec![],
        argv_cut: false,
        exe_owner: None,
        env: Environment(
            env.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        ),
        boot_ns: pid as u64 * 1_000_000_000,
    })
}

fn access(pid: u32, file: FileKey) -> KernelEvent {
    KernelEvent::FileAccess {
        pid,
        file,
        hook: Hook::Read,
        uid: 1000,
        comm: "x".into(),
        enforcement: None,
        enforcement_rule: None,
        boot_ns: 1,
    }
}

fn connect(pid: u32, port: u16) -> KernelEvent {
    KernelEvent::Connect(Connect {
        pid,
        uid: 1000,
        comm: "x".into(),
        ip: "127.0.0.1".parse().unwrap(),
        port,
        protocol: Protocol::Tcp,
        cookie: 0,
        enforcement: None,
        enforcement_rule: None,
        boot_ns: 2,
    })
}

/// Runs a recorded stream; returns (type, pid, via) of each record.
fn run(events: &[KernelEvent], catalog: &mut Catalog) -> Vec<(String, u32, Option<Via>)> {
    let policy = Arc::new(Policy::embedded());
    let mut c = Correlator::new(
        ProcessTracker::new(100, None),
        Clock::fixed(0),
        policy,
        crate::testing::resolvers(),
    );
    let mut out = Vec::new();
    for e in events {
        c.handle(e, catalog, &mut out);
    }
    out.iter()
        .map(|r| match r {
            Record::CredentialAccess { process, .. } => ("access".into(), process.pid, None),
            Record::Connection { process, .. } => ("connection".into(), process.pid, None),
            Record::CredentialUse { process, via, .. } => ("use".into(), process.pid, Some(*via)),
            other => (format!("{other:?}"), 0, None),
        })
        .collect()
}

#[test]
fn read_then_connect_is_a_use_and_access_is_reported_once() {
    let (mut catalog, file, path) = catalog_with_netrc("read_then_connect");
    let records = run(
        &[
            exec(10, 1, "python3"),
            access(10, file),
            access(10, file),
            connect(10, 8080),
        ],
        &mut catalog,
    );
    assert_eq!(
        records,
        vec![
            ("access".into(), 10, None),
            ("connection".into(), 10, None),
            ("use".into(), 10, Some(Via::Read)),
        ]
    );
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_helper_child_reading_makes_its_parents_later_connect_a_use() {
    let (mut catalog, file, path) = catalog_with_netrc("helper");
    let events = [
        exec(20, 1, "git-remote-http"),
        connect(20, 80), // the unauthenticated request: no credential yet, no record
        exec(21, 20, "git-credential-store"),
        access(21, file),
        KernelEvent::Exit {
            pid: 21,
            boot_ns: 3,
        },
        connect(20, 81),
    ];
    let records = run(&events, &mut catalog);
    assert_eq!(
        records,
        vec![
            ("access".into(), 21, None),
            ("connection".into(), 20, None),
            ("use".into(), 20, Some(Via::Descendant)),
        ]
    );
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_read_by_a_process_holding_a_connection_uses_it() {
    let (mut catalog, file, path) = catalog_with_netrc("held");
    let records = run(
        &[exec(30, 1, "ssh"), connect(30, 22), access(30, file)],
        &mut catalog,
    );
    assert_eq!(
        records,
        vec![
            ("access".into(), 30, None),
            ("use".into(), 30, Some(Via::HeldConnection))
        ]
    );
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn children_inherit_but_unrelated_processes_do_not() {
    let (mut catalog, file, path) = catalog_with_netrc("inherit");
    let events = [
        exec(40, 1, "bash"),
        access(40, file),
        exec(41, 40, "curl"),
        connect(41, 443),
        exec(50, 1, "unrelated"),
        connect(50, 443),
    ];
    let records = run(&events, &mut catalog);
    assert_eq!(
        records,
        vec![
            ("access".into(), 40, None),
            ("connection".into(), 41, None),
            ("use".into(), 41, Some(Via::Ancestor)),
        ]
    );
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn files_no_longer_in_the_catalog_are_ignored() {
    let (mut catalog, _, path) = catalog_with_netrc("ignored");
    let records = run(
        &[exec(60, 1, "cat"), access(60, FileKey::new(1, 1))],
        &mut catalog,
    );
    assert!(records.is_empty());
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_secret_variable_is_read_at_exec_and_inherited_without_a_new_read() {
    let (mut catalog, _, path) = catalog_with_netrc("env");
    let env = [("GITHUB_TOKEN", "ghp_from_the_environment"), ("HOME", "/x")];
    let events = [
        exec_env(70, 1, "bash", &env),
        exec_env(71, 70, "curl", &env),
        connect(71, 443),
    ];
    let records = run(&events, &mut catalog);
    assert_eq!(
        records,
        vec![
            ("access".into(), 70, None),
            ("connection".into(), 71, None),
            ("use".into(), 71, Some(Via::Ancestor)),
        ]
    );
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn the_same_secret_in_a_file_and_a_variable_is_one_identity() {
    let (mut catalog, _, path) = catalog_with_netrc("identity");
    let policy = Arc::new(Policy::embedded());
    let mut c = Correlator::new(
        ProcessTracker::new(100, None),
        Clock::fixed(0),
        policy,
        crate::testing::resolvers(),
    );
    let mut out = Vec::new();
    let env = [("NETRC_PASSWORD", "netrc-secret-1")];
    c.handle(&exec_env(80, 1, "sh", &env), &mut catalog, &mut out);
    let Some(Record::CredentialAccess { credential, .. }) = out.first() else {
        panic!("no access: {out:?}")
    };
    assert_eq!(credential.path, "env:NETRC_PASSWORD");
    assert_eq!(
        credential.identity,
        format!("netrc:{}", path.display()),
        "the file held it first"
    );
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn tasks_of_one_agent_hand_credentials_across_only_in_scope() {
    let (mut catalog, file, path) = catalog_with_netrc("agent");
    let task = |n: &'static str| [("KEYTRAIL_CONTEXT", n)];
    let events = [
        exec(90, 1, "python3"),
        exec_env(91, 90, "cat", &task("task-1")),
        access(91, file),
        exec_env(92, 90, "curl", &task("task-2")),
        connect(92, 443), // 127.0.0.1 is named by the netrc: in scope
        exec(93, 1, "curl"),
        connect(93, 443), // another tree: nothing
    ];
    let records = run(&events, &mut catalog);
    assert_eq!(
        records,
        vec![
            ("access".into(), 91, None),
            ("connection".into(), 92, None),
            ("use".into(), 92, Some(Via::Agent)),
        ]
    );
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn one_variable_name_with_two_secrets_is_two_identities() {
    let (mut catalog, _, path) = catalog_with_netrc("two-env");
    let policy = Arc::new(Policy::embedded());
    let mut c = Correlator::new(
        ProcessTracker::new(100, None),
        Clock::fixed(0),
        policy,
        crate::testing::resolvers(),
    );
    let mut out = Vec::new();
    c.handle(
        &exec_env(110, 1, "sh", &[("GITHUB_TOKEN", "token-value-aaaa")]),
        &mut catalog,
        &mut out,
    );
    c.handle(
        &exec_env(111, 1, "sh", &[("GITHUB_TOKEN", "token-value-bbbb")]),
        &mut catalog,
        &mut out,
    );
    let identities: Vec<&str> = out
        .iter()
        .filter_map(|r| match r {
            Record::CredentialAccess { credential, .. } => Some(credential.identity.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(identities.len(), 2);
    assert_ne!(identities[0], identities[1]);
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn remembered_uses_are_bounded_and_none_is_missed() {
    let (mut catalog, file, path) = catalog_with_netrc("bounded_uses");
    let policy = Arc::new(Policy::embedded());
    let mut c = Correlator::new(
        ProcessTracker::new(100, None),
        Clock::fixed(0),
        policy,
        crate::testing::resolvers(),
    );
    let mut out = Vec::new();
    c.handle(&exec(10, 1, "python3"), &mut catalog, &mut out);
    c.handle(&access(10, file), &mut catalog, &mut out);
    let connects = MAX_USES as u16 + 100;
    for port in 1000..1000 + connects {
        c.handle(&connect(10, port), &mut catalog, &mut out);
    }
    let uses = out
        .iter()
        .filter(|r| matches!(r, Record::CredentialUse { .. }))
        .count();
    assert_eq!(uses, usize::from(connects), "every use is reported");
    assert!(c.uses.len() <= MAX_USES);
    assert!(c.evicted().2 >= MAX_USES as u64);
    fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// A secret variable's value copied out (a file in /tmp, a pipe) and sent by an unrelated
/// process: the request proves the use, of the variable's credential, `via: untracked-copy`.
#[test]
fn a_copied_variable_sent_by_an_unrelated_process_is_an_untracked_copy() {
    let (mut catalog, _, netrc) = catalog_with_netrc("envcopy");
    let token = "kt-env-copy-token-4d2f";
    let request = format!("GET /v1 HTTP/1.1\r\nHost: h\r\nX-Api-Key: {token}\r\n\r\n");
    let send = KernelEvent::Payload(Payload {
        kind: PayloadKind::HttpRequest,
        pid: 30,
        cookie: 0,
        protocol: Protocol::Tcp,
        seq: 0,
        total_len: request.len(),
        data: request.into_bytes(),
        peer: None,
        boot_ns: 3,
    });
    let events = [
        exec_env(20, 1, "agent", &[("SERVICE_TOKEN", token)]),
        exec(30, 1, "python3"),
        connect(30, 8080),
        send,
    ];
    let records = run(&events, &mut catalog);
    assert!(
        records.contains(&("use".into(), 30, Some(Via::UntrackedCopy))),
        "{records:?}"
    );
    fs::remove_dir_all(netrc.parent().unwrap()).unwrap();
}
