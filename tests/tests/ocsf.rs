//! `--format ocsf`: every event keytrail writes validates against the OCSF schema, as the
//! published `ocsf-json-schema` package carries it (tests/ocsf/validate.py, in the virtualenv
//! xtask/setup.sh makes): events from the live kernel with real processes (a credential read,
//! a connection, a use outside the scope and the finding about it, an unexpected reader,
//! keytrail's start and stop), and the findings of every recorded rules scenario.
use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use keytrail_tests::*;
use serde_json::Value;

const TOKEN: &str = "kt-ocsf-token-2b7d41";
const KEY: &str = "kt-ocsf-private-key-8812";
const VALIDATOR_PYTHON: &str = "/opt/keytrail-test-tools/ocsf/bin/python";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the validator on `events`; fails the test, with its findings, if any event is broken.
fn validate(events: &str, what: &str) {
    assert!(
        Path::new(VALIDATOR_PYTHON).exists(),
        "{VALIDATOR_PYTHON} is missing: run ./xtask/setup.sh (it installs the OCSF schema and validator)"
    );
    let file = scratch_dir("ocsf-events").join("events.ndjson");
    fs::write(&file, events).unwrap();
    let out = Command::new(VALIDATOR_PYTHON)
        .arg(workspace().join("tests/ocsf/validate.py"))
        .arg(&file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: events the OCSF schema refuses:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{what}: {}", report.trim());
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn live_events_are_valid_ocsf() {
    require_root();
    let user = TestUser::create("ocsf");
    let token = user.write(".kt-token", &format!("{TOKEN}\n"));
    let key = user.write(".ssh/id_ed25519", &format!("{KEY}\n"));
    let dir = scratch_dir("ocsf");
    let policy = dir.join("policy.toml");
    let default = run(Command::new(keytrail_bin()).args(["policy", "--default"])).stdout;
    let mut text = String::from_utf8(default).unwrap();
    text.push_str(&format!(
        "\n[[credentials]]\nkind = \"generic\"\npaths = [{:?}]\ncidrs = [\"127.0.0.0/8\"]\nports = [443]\n",
        path_str(&token)
    ));
    fs::write(&policy, text).unwrap();
    let output = dir.join("events.ndjson");
    let child = Command::new(keytrail_bin())
        .args([
            "run",
            "--format",
            "ocsf",
            "--stats-interval",
            "0s",
            "--config",
        ])
        .arg(&policy)
        .arg("--output")
        .arg(&output)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut keytrail = KillOnDrop(child);
    let read = || fs::read_to_string(&output).unwrap_or_default();
    let wait = |what: &str, timeout: Duration, found: &dyn Fn(&[Value]) -> bool| {
        let deadline = Instant::now() + timeout;
        while !found(&events(&read())) {
            assert!(Instant::now() < deadline, "no {what}; events:\n{}", read());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("start event", Duration::from_secs(20), &|e| {
        e.iter()
            .any(|e| e["class_uid"] == 6002 && e["activity_id"] == 3)
    });

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "open({:?}).read()\nimport socket; socket.create_connection(('127.0.0.1', {port})).close()",
        path_str(&token)
    );
    let reader = run_pid(user.command("python3").args(["-c", &script]));
    let cat = run_pid(user.command("cat").arg(&key));
    let finding = |rule: &'static str, pid: u32| {
        move |e: &[Value]| {
            e.iter().any(|e| {
                e["class_uid"] == 2004
                    && e["finding_info"]["title"] == rule
                    && e["actor"]["process"]["pid"] == pid
            })
        }
    };
    wait(
        "out-of-scope-use finding",
        WAIT,
        &finding("out-of-scope-use", reader),
    );
    wait(
        "unexpected-reader finding",
        WAIT,
        &finding("unexpected-reader", cat),
    );
    // SAFETY: a signal to a child of ours.
    unsafe { libc::kill(keytrail.0.id() as i32, libc::SIGTERM) };
    let status = keytrail.0.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut keytrail.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "keytrail exited with {status}:\n{stderr}");

    let text = read();
    let all = events(&text);
    let of_reader = |class: u64| {
        all.iter()
            .filter(|e| e["class_uid"] == class && e["actor"]["process"]["pid"] == reader)
            .collect::<Vec<_>>()
    };
    let reads = of_reader(1001);
    assert!(
        reads.iter().any(|e| e["file"]["path"] == path_str(&token)
            && e["activity_id"] == 2
            && e["unmapped"]["credential"]["kind"] == "generic"),
        "the read is a File System Activity Read of the token:\n{text}"
    );
    let network = of_reader(4001);
    assert!(
        network.iter().any(|e| e["dst_endpoint"]["port"] == port
            && e["unmapped"]["keytrail_type"] == "credential_use"),
        "the use is a Network Activity to the listener:\n{text}"
    );
    let stop = all.last().unwrap();
    assert_eq!(
        stop["class_uid"], 6002,
        "the last event is keytrail's counters"
    );
    assert_eq!(stop["unmapped"]["keytrail_type"], "stats");
    for secret in [TOKEN, KEY] {
        assert!(!text.contains(secret), "{secret} in the events");
        assert!(!stderr.contains(secret), "{secret} in the log");
    }
    validate(&text, "live events");
    drop(listener);
    drop(user);
}

/// The findings of every recorded scenario, each rule's at least once, replayed as OCSF.
#[test]
fn every_rules_findings_are_valid_ocsf() {
    let scenarios = workspace().join("monitor/src/rules/scenarios");
    let mut all = String::new();
    for entry in fs::read_dir(&scenarios).unwrap() {
        let events = entry.unwrap().path().join("events.ndjson");
        let out = run(Command::new(keytrail_bin())
            .args(["replay", "--format", "ocsf"])
            .arg(&events));
        all.push_str(&String::from_utf8(out.stdout).unwrap());
    }
    let rules: std::collections::BTreeSet<String> = events(&all)
        .iter()
        .filter(|e| e["class_uid"] == 2004)
        .map(|e| e["finding_info"]["title"].as_str().unwrap().to_owned())
        .collect();
    for rule in [
        "cross-context-reuse",
        "identity-mesh",
        "identity-collapse",
        "out-of-scope-use",
        "unexpected-reader",
    ] {
        assert!(rules.contains(rule), "no {rule} finding among {rules:?}");
    }
    validate(&all, "replayed findings");
}
