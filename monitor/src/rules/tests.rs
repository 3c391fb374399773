//! The rules on the recorded scenarios beside them (scenarios/): each directory holds events.ndjson
//! (records in), expected.ndjson (findings out; empty for the negatives that must stay silent)
//! and optionally policy.toml (else the embedded default).
use std::{
    fs,
    io::BufReader,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::{Value, json};

use crate::{
    policy::Policy,
    record::{Finding, Record},
    replay,
    sink::Sink,
};

#[derive(Default)]
struct Collect(Vec<Record>);

impl Sink for Collect {
    fn write(&mut self, record: &Record) -> std::io::Result<()> {
        self.0.push(record.clone());
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn scenarios() -> Vec<PathBuf> {
    crate::testing::scenario_dirs("rules")
}

/// What a finding is compared on.
fn project(record: &Record) -> Option<Value> {
    let Record::Finding(f) = record else {
        return None;
    };
    Some(json!({
        "rule": f.rule,
        "severity": f.severity,
        "credential": f.credential.as_ref().map(|c| c.id.clone()),
        "pid": f.process.pid,
        "user": f.user,
        "context": f.context,
        "endpoint": f.endpoint.as_ref().map(|e| format!("{}:{}", e.ip, e.port)),
        "count": f.count,
    }))
}

fn sorted(mut values: Vec<Value>) -> Vec<Value> {
    values.sort_by_key(|v| v.to_string());
    values
}

/// Every field written in `written` is one the record type has: a renamed or misspelt field in a
/// scenario would otherwise become a default and the scenario test something else.
fn unknown_fields(written: &Value, parsed: &Value, at: &str, out: &mut Vec<String>) {
    match (written, parsed) {
        (Value::Object(w), Value::Object(p)) => {
            for (key, value) in w {
                match p.get(key) {
                    Some(inner) => unknown_fields(value, inner, &format!("{at}.{key}"), out),
                    None => out.push(format!("{at}.{key}")),
                }
            }
        }
        (Value::Array(w), Value::Array(p)) => {
            for (i, (value, inner)) in w.iter().zip(p).enumerate() {
                unknown_fields(value, inner, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn scenario_records_have_no_field_the_contract_does_not() {
    for dir in scenarios() {
        let events = fs::read_to_string(dir.join("events.ndjson")).unwrap();
        for (n, line) in events.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let written: Value = serde_json::from_str(line).unwrap();
            let record: Record = serde_json::from_value(written.clone()).unwrap();
            let parsed = serde_json::to_value(&record).unwrap();
            let mut unknown = Vec::new();
            unknown_fields(&written, &parsed, "", &mut unknown);
            assert!(
                unknown.is_empty(),
                "{}/events.ndjson:{}: fields no record has: {unknown:?}",
                dir.display(),
                n + 1
            );
        }
    }
}

#[test]
fn every_scenario_gives_exactly_its_expected_findings() {
    let dirs = scenarios();
    assert!(dirs.len() >= 10, "scenarios found: {dirs:?}");
    let mut failures = Vec::new();
    for dir in &dirs {
        let policy = match dir.join("policy.toml") {
            p if p.exists() => Policy::load(&p).unwrap(),
            _ => Policy::embedded(),
        };
        let events = dir.join("events.ndjson");
        let input = BufReader::new(fs::File::open(&events).unwrap());
        let mut sink = Collect::default();
        replay::replay(input, &events, Arc::new(policy), &mut sink).unwrap();
        let got = sorted(sink.0.iter().filter_map(project).collect());
        let expected = sorted(
            fs::read_to_string(dir.join("expected.ndjson"))
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        );
        if got != expected {
            failures.push(format!(
                "{}:\n  expected {expected:#?}\n  got {got:#?}",
                dir.display()
            ));
        }
        for finding in sink.0.iter().filter(|r| matches!(r, Record::Finding(_))) {
            let Record::Finding(f) = finding else {
                unreachable!()
            };
            assert!(
                !f.evidence.is_empty(),
                "{}: a finding without evidence",
                dir.display()
            );
            assert!(!f.summary.is_empty());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rule_has_a_scenario_that_fires_it() {
    let mut fired = std::collections::BTreeSet::new();
    for dir in scenarios() {
        for line in fs::read_to_string(dir.join("expected.ndjson"))
            .unwrap()
            .lines()
        {
            let v: Value = serde_json::from_str(line).unwrap();
            fired.insert(v["rule"].as_str().unwrap().to_owned());
        }
    }
    // monitor-blind is the daemon's, from kernel counters, not a rule over records: its test is
    // live (tests/tests/credential_access.rs) and in pipeline/flood.rs.
    let rules = crate::vocab::RuleId::ALL
        .into_iter()
        .filter(|r| *r != crate::vocab::RuleId::MonitorBlind);
    for rule in rules {
        assert!(
            fired.contains(&rule.to_string()),
            "no scenario fires {rule}"
        );
    }
}

#[test]
fn a_broken_line_is_an_error_naming_file_and_line() {
    let input = "\n# comment\n{\"type\":\"credential_access\"}\n";
    let err = replay::replay(
        input.as_bytes(),
        Path::new("x.ndjson"),
        Arc::new(Policy::embedded()),
        &mut Collect::default(),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").starts_with("x.ndjson:3: not a keytrail record"),
        "{err:#}"
    );
}

#[test]
fn an_endless_line_is_refused_not_read_into_memory() {
    // What `keytrail replay /dev/zero` reads: bytes without end, and no newline.
    let endless = BufReader::new(std::io::repeat(0));
    let err = replay::replay(
        endless,
        Path::new("/dev/zero"),
        Arc::new(Policy::embedded()),
        &mut Collect::default(),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").starts_with("/dev/zero:1: longer than"),
        "{err:#}"
    );
    let err = replay::replay(
        &b"\xff\xfe\n"[..],
        Path::new("bytes"),
        Arc::new(Policy::embedded()),
        &mut Collect::default(),
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").starts_with("bytes:1: not UTF-8"),
        "{err:#}"
    );
}

#[test]
fn a_context_with_many_identities_makes_one_small_finding_per_identity() {
    const N: usize = 200;
    let mut input = String::new();
    for i in 0..N {
        input.push_str(&format!(
            r#"{{"type":"credential_use","time":"2026-11-23T10:00:{:02}.{:06}Z","credential":{{"id":"generic:/t/{i}","kind":"generic","path":"/t/{i}","owner":1000,"identity":"generic:/t/{i}"}},"process":{{"pid":300,"ppid":299,"comm":"python3","exe":"/usr/bin/python3","uid":1000,"loginuid":1000,"context":"task-7","agent":{{"name":"coding-agent","pid":299}}}},"endpoint":{{"ip":"10.0.0.1","port":443,"protocol":"tcp"}},"via":"read","reader":{{"pid":300,"ppid":299,"comm":"python3","exe":"/usr/bin/python3","uid":1000,"loginuid":1000,"context":"task-7"}}}}"#,
            i / 100,
            i
        ));
        input.push('\n');
    }
    let mut sink = Collect::default();
    replay::replay(
        input.as_bytes(),
        Path::new("mesh"),
        Arc::new(Policy::embedded()),
        &mut sink,
    )
    .unwrap();
    let meshes: Vec<&Finding> = sink
        .0
        .iter()
        .filter_map(|r| match r {
            Record::Finding(f) if f.rule == crate::vocab::RuleId::IdentityMesh => Some(&**f),
            _ => None,
        })
        .collect();
    assert_eq!(
        meshes.len(),
        N - 1,
        "one finding per identity after the first"
    );
    let last = meshes.last().unwrap();
    assert!(
        last.summary.contains(&format!("{N} identities")),
        "{}",
        last.summary
    );
    assert!(last.summary.contains("and 192 more"), "{}", last.summary);
    assert!(
        meshes
            .iter()
            .all(|f| f.evidence.len() <= 8 && f.summary.len() < 2048)
    );
    let total: usize = sink
        .0
        .iter()
        .map(|r| serde_json::to_string(r).unwrap().len())
        .sum();
    assert!(
        total < N * 16 * 1024,
        "output grows with identities, not their square: {total} bytes"
    );
}
