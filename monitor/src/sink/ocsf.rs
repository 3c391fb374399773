//! `--format ocsf`: each record as an OCSF 1.5.0 event, one JSON object per line, for SIEMs and
//! data lakes that ingest the Open Cybersecurity Schema Framework. The classes and fields are
//! in docs/ocsf.md; the tests validate every event against the published schema.
//!
//! What OCSF has no field for (the credential, the context, the agent, how a use is known, a
//! finding's evidence records) goes under `unmapped`, in keytrail's own contract form, so that
//! nothing a JSON record says is lost. OCSF's schema refuses nulls and unknown fields: absent
//! values are left out, never written as null.
use std::io::{self, Write};

use serde_json::{Map, Value, json};

use super::Sink;
use crate::{
    record::{CredentialRef, EndpointRef, Finding, ProcessRef, Record},
    vocab::{Enforced, FindingAction, HostSource, Protocol, Severity, Timestamp},
};

/// The OCSF version the events follow.
pub const OCSF_VERSION: &str = "1.5.0";

/// OCSF classes keytrail writes: (class_uid, category_uid).
const FILE_SYSTEM_ACTIVITY: (u32, u32) = (1001, 1);
const DETECTION_FINDING: (u32, u32) = (2004, 2);
const NETWORK_ACTIVITY: (u32, u32) = (4001, 4);
const APPLICATION_LIFECYCLE: (u32, u32) = (6002, 6);

/// Activity ids of those classes.
const READ: u32 = 2; // File System Activity
const CREATE: u32 = 1; // Detection Finding
const OPEN: u32 = 1; // Network Activity
const REFUSE: u32 = 5; // Network Activity
const START: u32 = 3; // Application Lifecycle
const OTHER: u32 = 99;

/// severity_id: Informational for what is only an observation.
const INFORMATIONAL: u32 = 1;
/// status_id.
const SUCCESS: u32 = 1;
const FAILURE: u32 = 2;

pub struct OcsfSink<W> {
    out: W,
    /// This machine's name, for every event's `device`.
    hostname: String,
    line: Vec<u8>,
}

impl<W: Write> OcsfSink<W> {
    pub fn new(out: W) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Self::with_hostname(out, hostname)
    }

    fn with_hostname(out: W, hostname: String) -> Self {
        Self {
            out,
            hostname,
            line: Vec::with_capacity(2048),
        }
    }
}

impl<W: Write> Sink for OcsfSink<W> {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, &event(record, &self.hostname))?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `record` as an OCSF event.
pub fn event(record: &Record, hostname: &str) -> Value {
    match record {
        Record::CredentialAccess {
            time,
            credential,
            process,
            hook,
            enforcement,
            enforcement_rule,
        } => {
            let mut e = base(FILE_SYSTEM_ACTIVITY, READ, *time, INFORMATIONAL, hostname);
            e.insert("actor".into(), actor(process));
            e.insert("file".into(), file(credential));
            e.insert(
                "message".into(),
                format!(
                    "{} read {} credential {}",
                    process.comm, credential.kind, credential.path
                )
                .into(),
            );
            status(
                &mut e,
                *enforcement,
                enforcement_rule.map(|r| r.to_string()),
            );
            e.insert(
                "unmapped".into(),
                json!({
                    "keytrail_type": record.type_name(),
                    "credential": credential,
                    "process": keytrail_process(process),
                    "hook": hook,
                    "enforcement": enforcement,
                    "enforcement_rule": enforcement_rule,
                }),
            );
            Value::Object(e)
        }
        Record::Connection {
            time,
            process,
            endpoint,
        } => {
            let mut e = network(time, process, endpoint, hostname);
            e.insert(
                "unmapped".into(),
                json!({
                    "keytrail_type": record.type_name(),
                    "process": keytrail_process(process),
                    "endpoint": endpoint,
                }),
            );
            Value::Object(e)
        }
        Record::CredentialUse {
            time,
            credential,
            process,
            endpoint,
            via,
            reader,
            proof,
            request,
        } => {
            let mut e = network(time, process, endpoint, hostname);
            e.insert(
                "message".into(),
                format!(
                    "{} used {} credential {} against {}",
                    process.comm,
                    credential.kind,
                    credential.path,
                    endpoint_text(endpoint)
                )
                .into(),
            );
            e.insert(
                "unmapped".into(),
                json!({
                    "keytrail_type": record.type_name(),
                    "credential": credential,
                    "process": keytrail_process(process),
                    "endpoint": endpoint,
                    "via": via,
                    "reader": keytrail_process(reader),
                    "proof": proof,
                    "request": request,
                }),
            );
            Value::Object(e)
        }
        Record::Finding(f) => finding(f, hostname),
        Record::Ready {
            time,
            credentials,
            policy,
            ..
        } => {
            let mut e = base(APPLICATION_LIFECYCLE, START, *time, INFORMATIONAL, hostname);
            e.insert("app".into(), product());
            e.insert(
                "message".into(),
                format!("keytrail ready: watching {credentials} credentials (policy: {policy})")
                    .into(),
            );
            e.insert("unmapped".into(), contract(record));
            Value::Object(e)
        }
        Record::Stats { time, .. } => {
            let mut e = base(APPLICATION_LIFECYCLE, OTHER, *time, INFORMATIONAL, hostname);
            e.insert("activity_name".into(), "Stats".into());
            e.insert("app".into(), product());
            e.insert("message".into(), "keytrail's counters".into());
            e.insert("unmapped".into(), contract(record));
            Value::Object(e)
        }
    }
}

/// A Detection Finding: the rule, its verdict, who and what; an evidence artifact of the
/// process, the credential and the endpoint; the proving records under `unmapped`.
fn finding(f: &Finding, hostname: &str) -> Value {
    let mut e = base(
        DETECTION_FINDING,
        CREATE,
        f.time,
        severity(f.severity),
        hostname,
    );
    e.insert("message".into(), f.summary.clone().into());
    e.insert(
        "finding_info".into(),
        json!({
            // One finding per rule, process and moment: as unique as keytrail's own output.
            "uid": format!("keytrail:{}:{}:{}", f.rule, f.process.pid, f.time.unix_ns()),
            "title": f.rule.to_string(),
            "desc": f.summary,
            "types": [f.rule.to_string()],
            "product": product(),
        }),
    );
    e.insert("actor".into(), actor(&f.process));
    let mut artifact = Map::new();
    artifact.insert("process".into(), process(&f.process));
    if let Some(credential) = &f.credential {
        artifact.insert("file".into(), file(credential));
    }
    if let Some(endpoint) = &f.endpoint {
        artifact.insert("dst_endpoint".into(), dst_endpoint(endpoint));
    }
    e.insert("evidences".into(), json!([artifact]));
    // What came of it: OCSF's security-control fields.
    let (action_id, disposition_id) = match f.action {
        FindingAction::Reported => (ACTION_OBSERVED, DISPOSITION_DETECTED),
        FindingAction::Denied => (ACTION_DENIED, DISPOSITION_BLOCKED),
        FindingAction::WouldDeny => (ACTION_OBSERVED, DISPOSITION_DETECTED),
    };
    e.insert("action_id".into(), action_id.into());
    e.insert("disposition_id".into(), disposition_id.into());
    e.insert("count".into(), f.count.into());
    let mut unmapped = contract(&Record::Finding(Box::new(f.clone())));
    if let Value::Object(m) = &mut unmapped {
        m.insert("keytrail_type".into(), "finding".into());
    }
    e.insert("unmapped".into(), unmapped);
    Value::Object(e)
}

/// action_id and disposition_id of the security-control profile.
const ACTION_ALLOWED: u32 = 1;
const ACTION_DENIED: u32 = 2;
const ACTION_OBSERVED: u32 = 3;
const DISPOSITION_ALLOWED: u32 = 1;
const DISPOSITION_BLOCKED: u32 = 2;
const DISPOSITION_DETECTED: u32 = 15;

/// A Network Activity event: Open, or Refuse when enforcement refused the connect.
fn network(
    time: &Timestamp,
    process: &ProcessRef,
    endpoint: &EndpointRef,
    hostname: &str,
) -> Map<String, Value> {
    let refused = endpoint.enforcement == Some(Enforced::Denied);
    let activity = if refused { REFUSE } else { OPEN };
    let mut e = base(NETWORK_ACTIVITY, activity, *time, INFORMATIONAL, hostname);
    e.insert("actor".into(), actor(process));
    e.insert("dst_endpoint".into(), dst_endpoint(endpoint));
    let mut connection = Map::new();
    connection.insert("direction_id".into(), OUTBOUND.into());
    if let Some((number, name)) = protocol(endpoint.protocol) {
        connection.insert("protocol_num".into(), number.into());
        connection.insert("protocol_name".into(), name.into());
    }
    e.insert("connection_info".into(), Value::Object(connection));
    e.insert(
        "message".into(),
        format!("{} connected to {}", process.comm, endpoint_text(endpoint)).into(),
    );
    status(
        &mut e,
        endpoint.enforcement,
        endpoint.enforcement_rule.map(|r| r.to_string()),
    );
    e
}

/// connection_info.direction_id: Outbound.
const OUTBOUND: u32 = 2;

/// The fields every event has.
fn base(
    (class_uid, category_uid): (u32, u32),
    activity_id: u32,
    time: Timestamp,
    severity_id: u32,
    hostname: &str,
) -> Map<String, Value> {
    let mut e = Map::new();
    e.insert("class_uid".into(), class_uid.into());
    e.insert("category_uid".into(), category_uid.into());
    e.insert("activity_id".into(), activity_id.into());
    e.insert("type_uid".into(), (class_uid * 100 + activity_id).into());
    e.insert("severity_id".into(), severity_id.into());
    e.insert("time".into(), (time.unix_ns() / 1_000_000).into());
    e.insert("time_dt".into(), time.to_string().into());
    e.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "product": product(),
            "profiles": ["host", "datetime", "security_control"],
        }),
    );
    let mut device = json!({ "type_id": 0 });
    if !hostname.is_empty() {
        device["hostname"] = hostname.into();
    }
    e.insert("device".into(), device);
    e
}

fn product() -> Value {
    json!({
        "name": "keytrail",
        "vendor_name": "keytrail",
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// OCSF's severity_id for a finding's severity.
fn severity(s: Severity) -> u32 {
    match s {
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

/// status_id, the security-control verdict, and what refused it: a refusal failed the act
/// (Denied, Blocked); a dry run's let it through (Allowed, Detected); else Allowed.
fn status(e: &mut Map<String, Value>, enforcement: Option<Enforced>, rule: Option<String>) {
    let rule = rule.unwrap_or_else(|| "policy".to_owned());
    let (status_id, action_id, disposition_id, detail) = match enforcement {
        Some(Enforced::Denied) => (
            FAILURE,
            ACTION_DENIED,
            DISPOSITION_BLOCKED,
            Some(format!("denied by keytrail: {rule}")),
        ),
        Some(Enforced::WouldDeny) => (
            SUCCESS,
            ACTION_ALLOWED,
            DISPOSITION_DETECTED,
            Some(format!(
                "would have been denied by keytrail (dry run): {rule}"
            )),
        ),
        None => (SUCCESS, ACTION_ALLOWED, DISPOSITION_ALLOWED, None),
    };
    e.insert("status_id".into(), status_id.into());
    e.insert("action_id".into(), action_id.into());
    e.insert("disposition_id".into(), disposition_id.into());
    if let Some(detail) = detail {
        e.insert("status_detail".into(), detail.into());
    }
}

/// The process, and the user it acts for (the login user where one is set).
fn actor(p: &ProcessRef) -> Value {
    json!({
        "process": process(p),
        "user": { "uid": p.originating_uid().to_string() },
    })
}

fn process(p: &ProcessRef) -> Value {
    let mut v = json!({
        "pid": p.pid,
        "name": p.comm,
        "user": { "uid": p.uid.to_string() },
        "parent_process": { "pid": p.ppid },
    });
    if !p.argv.is_empty() {
        // Already redacted: known secrets and secret-looking values are gone from argv.
        v["cmd_line"] = p.argv.join(" ").into();
    }
    if !p.exe.is_empty() {
        let name = p.exe.rsplit('/').next().unwrap_or(&p.exe);
        v["file"] = json!({ "path": p.exe, "name": name, "type_id": REGULAR_FILE });
    }
    v
}

/// file.type_id: Regular File.
const REGULAR_FILE: u32 = 1;

fn file(c: &CredentialRef) -> Value {
    let name = c.path.rsplit('/').next().unwrap_or(&c.path);
    // `env:NAME` is no file: a variable in a process's environment at exec.
    let type_id = if c.path.starts_with("env:") {
        OTHER
    } else {
        REGULAR_FILE
    };
    let mut v = json!({ "path": c.path, "name": name, "type_id": type_id });
    if let Some(owner) = c.owner {
        v["owner"] = json!({ "uid": owner.to_string() });
    }
    v
}

/// The destination. Its hostname only where DNS gave the address for it: a name only the TLS
/// hello gives is what the process claims (`curl --resolve`), which stays under `unmapped`.
fn dst_endpoint(endpoint: &EndpointRef) -> Value {
    let mut v = json!({ "port": endpoint.port });
    if endpoint.ip.parse::<std::net::IpAddr>().is_ok() {
        v["ip"] = endpoint.ip.clone().into();
    }
    if let Some(host) = verified_host(endpoint) {
        v["hostname"] = host.into();
    }
    v
}

fn verified_host(endpoint: &EndpointRef) -> Option<&str> {
    (endpoint.host_source == Some(HostSource::Dns))
        .then_some(endpoint.host.as_deref())
        .flatten()
}

/// IANA protocol number and name.
fn protocol(p: Protocol) -> Option<(u32, &'static str)> {
    match p {
        Protocol::Tcp => Some((6, "tcp")),
        Protocol::Udp => Some((17, "udp")),
        Protocol::Other => None,
    }
}

fn endpoint_text(endpoint: &EndpointRef) -> String {
    match (verified_host(endpoint), &endpoint.host) {
        (Some(host), _) => format!("{host} ({}:{})", endpoint.ip, endpoint.port),
        (None, Some(claimed)) => {
            format!("{}:{} (claimed name {claimed})", endpoint.ip, endpoint.port)
        }
        (None, None) => format!("{}:{}", endpoint.ip, endpoint.port),
    }
}

/// keytrail's own process record, whole: argv as a list (OCSF's `cmd_line` joins it, which
/// loses where one argument ends), the context, the agent, the login uid.
fn keytrail_process(p: &ProcessRef) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// The record as the JSON contract writes it, under a key OCSF leaves alone.
fn contract(record: &Record) -> Value {
    let mut v = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        // `type` is OCSF's too (type_uid); keep the contract's under its own name.
        if let Some(t) = m.remove("type") {
            m.insert("keytrail_type".into(), t);
        }
        m.remove("time");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROCESS: &str = r#"{"pid": 200, "ppid": 1, "comm": "python3", "exe": "/usr/bin/python3",
        "argv": ["python3", "-c", "x"], "uid": 1000, "loginuid": 1001, "context": "tenant-b", "agent": null}"#;

    fn ocsf(record: &str) -> Value {
        let record: Record = serde_json::from_str(&record.replace("PROCESS", PROCESS)).unwrap();
        event(&record, "host-1")
    }

    /// No null outside `unmapped`: OCSF's schema refuses them.
    fn assert_no_null(v: &Value, at: &str) {
        match v {
            Value::Null => panic!("null at {at}"),
            Value::Object(m) => m
                .iter()
                .filter(|(k, _)| *k != "unmapped")
                .for_each(|(k, v)| assert_no_null(v, &format!("{at}/{k}"))),
            Value::Array(a) => a.iter().for_each(|v| assert_no_null(v, at)),
            _ => {}
        }
    }

    #[test]
    fn a_read_refused_by_context_is_a_failed_file_read() {
        let e = ocsf(
            r#"{"type": "credential_access", "time": "2026-11-23T10:00:01.000000Z",
            "credential": {"id": "generic:/srv/a/token", "kind": "generic", "path": "/srv/a/token",
            "owner": 1000}, "process": PROCESS, "hook": "open", "enforcement": "denied",
            "enforcement_rule": "cross-context-reuse"}"#,
        );
        assert_eq!(
            (e["class_uid"].clone(), e["type_uid"].clone()),
            (1001.into(), 100102.into())
        );
        assert_eq!(e["time"], 1_795_428_001_000u64);
        assert_eq!(e["file"]["name"], "token");
        assert_eq!(e["status_id"], FAILURE);
        assert_eq!(
            e["status_detail"],
            "denied by keytrail: cross-context-reuse"
        );
        // The user acted for is the login user; the process's own uid stays with it.
        assert_eq!(e["actor"]["user"]["uid"], "1001");
        assert_eq!(e["actor"]["process"]["user"]["uid"], "1000");
        assert_eq!(e["device"]["hostname"], "host-1");
        assert_eq!(e["unmapped"]["process"]["context"], "tenant-b");
        assert_eq!(
            e["unmapped"]["process"]["argv"],
            json!(["python3", "-c", "x"])
        );
        assert_eq!(
            (e["action_id"].clone(), e["disposition_id"].clone()),
            (2.into(), 2.into())
        );
        assert_no_null(&e, "");
    }

    #[test]
    fn a_secret_variable_is_no_regular_file() {
        let e = ocsf(
            r#"{"type": "credential_access", "time": "2026-11-23T10:00:01Z",
            "credential": {"id": "aws:env:AWS_SECRET_ACCESS_KEY", "kind": "aws",
            "path": "env:AWS_SECRET_ACCESS_KEY"}, "process": PROCESS, "hook": "environment"}"#,
        );
        assert_eq!(e["file"]["type_id"], OTHER);
        assert!(e["file"].get("owner").is_none());
        assert_no_null(&e, "");
    }

    #[test]
    fn a_refused_connect_is_a_refused_network_activity() {
        let e = ocsf(
            r#"{"type": "connection", "time": "2026-11-23T10:00:01Z", "process": PROCESS,
            "endpoint": {"ip": "203.0.113.9", "port": 443, "protocol": "tcp",
            "enforcement": "denied", "enforcement_rule": "out-of-scope-use"}}"#,
        );
        assert_eq!(e["class_uid"], 4001);
        assert_eq!(e["activity_id"], REFUSE);
        assert_eq!(e["type_uid"], 400105);
        assert_eq!(e["status_id"], FAILURE);
        assert_eq!(e["connection_info"]["protocol_name"], "tcp");
        assert_eq!(e["dst_endpoint"]["ip"], "203.0.113.9");
        assert!(e["dst_endpoint"].get("hostname").is_none());
        assert_no_null(&e, "");
    }

    #[test]
    fn a_name_only_the_tls_hello_gave_is_no_destination_hostname() {
        let endpoint = |source: &str| {
            ocsf(&format!(
                r#"{{"type": "connection", "time": "2026-11-23T10:00:01Z", "process": PROCESS,
                "endpoint": {{"ip": "203.0.113.9", "port": 443, "protocol": "tcp",
                "host": "api.github.com", "host_source": "{source}"}}}}"#
            ))
        };
        let claimed = endpoint("tls_sni");
        assert!(claimed["dst_endpoint"].get("hostname").is_none());
        assert!(
            claimed["message"]
                .as_str()
                .unwrap()
                .contains("claimed name api.github.com")
        );
        assert_eq!(claimed["unmapped"]["endpoint"]["host"], "api.github.com");
        assert_eq!(
            endpoint("dns")["dst_endpoint"]["hostname"],
            "api.github.com"
        );
    }

    #[test]
    fn a_dry_run_connect_went_through() {
        let e = ocsf(
            r#"{"type": "connection", "time": "2026-11-23T10:00:01Z", "process": PROCESS,
            "endpoint": {"ip": "::1", "port": 80, "protocol": "udp", "enforcement": "would-deny"}}"#,
        );
        assert_eq!(e["activity_id"], OPEN);
        assert_eq!(e["status_id"], SUCCESS);
        assert_eq!(
            e["status_detail"],
            "would have been denied by keytrail (dry run): policy"
        );
        assert_eq!(
            (e["action_id"].clone(), e["disposition_id"].clone()),
            (1.into(), 15.into())
        );
    }
}
