//! The fleet. Identities: with a fleet key file (the same on every host, root's, 0600, never
//! sent), one secret has one fingerprint in every keytrail run, as on every host; without it,
//! each run keys its own. Two runs here stand for two hosts. Publishing: records to a real
//! NATS JetStream (Debian's nats-server, started here on loopback), each exactly once, also
//! when the server is away for ten seconds while credentials are read; read back with nats-py.
//! Needs root: run with `cargo xtask test`.
use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use keytrail_tests::*;
use serde_json::Value;

const SECRET: &str = "kt-fleet-token-0c4d7e";

/// One run: keytrail with `policy`, a read of `token` by cat; the ready record and the
/// credential's fingerprint in the access record.
fn fingerprint_in_a_run(policy: &Path, token: &Path) -> (Value, String) {
    let mut k = Keytrail::start(&["--config", policy.to_str().unwrap()]);
    let ready = k.records[0].clone();
    let reader = run_pid(Command::new("cat").arg(token));
    let access = k.wait_for("the read", WAIT, |r| {
        r["type"] == "credential_access" && r["process"]["pid"] == reader
    });
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[SECRET]);
    let print = access["credential"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    (ready, print)
}

#[test]
fn a_fleet_key_makes_fingerprints_the_same_across_runs_and_hosts() {
    require_root();
    let user = TestUser::create("fleet");
    let token = user.write(
        ".git-credentials",
        &format!("https://kt:{SECRET}@github.com\n"),
    );
    let dir = scratch_dir("fleet");
    let key = dir.join("fleet.key");
    let key_bytes = "kt-fleet-key-material-do-not-print-0123456789";
    fs::write(&key, key_bytes).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let default = run(Command::new(keytrail_bin()).args(["policy", "--default"])).stdout;
    let default = String::from_utf8(default).unwrap();
    let with_key = dir.join("fleet.toml");
    fs::write(
        &with_key,
        default.replace(
            "# key_file = \"/etc/keytrail/fleet.key\"",
            &format!("key_file = {:?}", key.display().to_string()),
        ),
    )
    .unwrap();
    let without_key = dir.join("local.toml");
    fs::write(&without_key, &default).unwrap();

    let (ready, first) = fingerprint_in_a_run(&with_key, &token);
    assert_eq!(ready["fingerprints"], "fleet");
    let (_, second) = fingerprint_in_a_run(&with_key, &token);
    assert_eq!(first, second, "one secret, one fleet fingerprint");
    let (ready, local) = fingerprint_in_a_run(&without_key, &token);
    assert_eq!(ready["fingerprints"], "host-local");
    let (_, local_again) = fingerprint_in_a_run(&without_key, &token);
    assert_ne!(
        local, local_again,
        "host-local fingerprints are keyed per run"
    );

    // A key others may read is refused before anything starts, naming the file.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(keytrail_bin())
        .args(["run", "--config", with_key.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("fleet.key") && stderr.contains("0644"),
        "{stderr}"
    );
    assert!(!stderr.contains(key_bytes), "the key's bytes in the error");
    drop(user);
}

const NATS_PYTHON: &str = "/opt/keytrail-test-tools/nats/bin/python";

/// Debian's nats-server with JetStream, on a loopback port of its own, its store in a scratch
/// directory that outlives a restart.
struct NatsServer {
    child: Option<Child>,
    store: PathBuf,
    port: u16,
}

impl NatsServer {
    fn start() -> Self {
        assert!(
            Path::new("/usr/sbin/nats-server").exists(),
            "nats-server is missing: run ./xtask/setup.sh (it installs Debian's nats-server)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            store: scratch_dir("nats-store"),
            port,
        };
        server.resume();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again), and waits until it listens.
    fn resume(&mut self) {
        let child = Command::new("/usr/sbin/nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it, as a crash would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every message of the stream, read by nats-py: (subject, id, record).
    fn messages(&self) -> Vec<(String, String, Value)> {
        assert!(
            Path::new(NATS_PYTHON).exists(),
            "{NATS_PYTHON} is missing: run ./xtask/setup.sh (it installs nats-py)"
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("nats/consume.py");
        let out = run(Command::new(NATS_PYTHON)
            .arg(script)
            .arg(self.url())
            .arg("KEYTRAIL"));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["subject"].as_str().unwrap().to_owned(),
                    v["id"].as_str().unwrap_or_default().to_owned(),
                    v["record"].clone(),
                )
            })
            .collect()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.store);
    }
}

/// A policy whose spool is a scratch directory of its own.
fn policy_with_spool(tag: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(tag);
    let spool = dir.join("spool");
    let default = run(Command::new(keytrail_bin()).args(["policy", "--default"])).stdout;
    let text = String::from_utf8(default).unwrap().replace(
        "spool_dir = \"/var/lib/keytrail/spool\"",
        &format!("spool_dir = {:?}", spool.display().to_string()),
    );
    let policy = dir.join("policy.toml");
    fs::write(&policy, text).unwrap();
    (policy, spool)
}

/// The records keytrail printed, each as the bus must hold it: minus `host`.
fn without_host(mut record: Value) -> Value {
    record.as_object_mut().unwrap().remove("host");
    record
}

/// Every printed record is on the bus exactly once, with its subject and host; nothing else is.
fn assert_each_once(printed: &[Value], on_bus: &[(String, String, Value)]) {
    let ids: std::collections::BTreeSet<&str> =
        on_bus.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), on_bus.len(), "a message id twice on the bus");
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for record in printed {
        *counts.entry(record.to_string()).or_default() += 1;
    }
    for (subject, _, record) in on_bus {
        let kind = record["type"].as_str().unwrap();
        assert!(
            subject.starts_with("keytrail.") && subject.ends_with(&format!(".{kind}")),
            "{subject} for a {kind}"
        );
        assert!(record["host"]["machine_id"].is_string() && record["host"]["name"].is_string());
        *counts
            .entry(without_host(record.clone()).to_string())
            .or_default() -= 1;
    }
    let off: Vec<_> = counts.iter().filter(|(_, n)| **n != 0).collect();
    assert!(
        off.is_empty(),
        "records not on the bus exactly once (printed minus published): {off:?}"
    );
}

#[test]
fn every_record_reaches_jetstream_once_with_its_host() {
    require_root();
    let server = NatsServer::start();
    let user = TestUser::create("nats");
    let token = user.write(
        ".git-credentials",
        &format!("https://kt:{SECRET}@github.com\n"),
    );
    let (policy, _spool) = policy_with_spool("nats");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut k = Keytrail::start(&[
        "--config",
        policy.to_str().unwrap(),
        "--nats",
        &server.url(),
        "--metrics",
        &metrics,
    ]);
    // Every thread keeps the four capabilities and no others; the publisher's (which starts
    // before the daemon gives up what it needs only to load, and parses what the server
    // sends) keeps none.
    let mut publishers = 0;
    for task in fs::read_dir(format!("/proc/{}/task", k.pid())).unwrap() {
        let task = task.unwrap().path();
        let status = fs::read_to_string(task.join("status")).unwrap();
        let capabilities = |set: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(set))
                .unwrap()
                .trim()
                .to_owned()
        };
        let name = fs::read_to_string(task.join("comm")).unwrap();
        let want = if name.trim() == "keytrail-nats" {
            publishers += 1;
            "0000000000000000"
        } else {
            "000000c000080004"
        };
        for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
            assert_eq!(capabilities(set), want, "{set} of thread {}", name.trim());
        }
    }
    assert_eq!(publishers, 1, "one publisher thread");
    let reader = run_pid(Command::new("cat").arg(&token));
    k.wait_for("the read", WAIT, |r| {
        r["type"] == "credential_access" && r["process"]["pid"] == reader
    });
    // The publisher's counts in the metrics: acknowledged records, and the spool.
    let deadline = Instant::now() + WAIT;
    loop {
        let out = run(Command::new("curl").args(["-s", &format!("http://{metrics}/metrics")]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let published = text
            .lines()
            .find_map(|l| l.strip_prefix("keytrail_published_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if published >= 2 && text.contains("keytrail_spool_bytes ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no published records in the metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (records, stderr) = k.stop();
    let stats = records.last().unwrap();
    assert_eq!(stats["fleet"]["spool_dropped"], 0, "{stats}");
    let on_bus = server.messages();
    assert_each_once(&records, &on_bus);
    let bus_text: String = on_bus.iter().map(|(_, _, r)| r.to_string()).collect();
    assert!(!bus_text.contains(SECRET), "the secret on the bus");
    assert_no_secret(&records, &stderr, &[SECRET]);
    drop(user);
}

/// The server killed for ten seconds while a user reads credentials in a loop: the records
/// wait in the spool, go out in order when it is back, and each is on the stream once.
#[test]
fn records_wait_in_the_spool_while_nats_is_away_and_arrive_once() {
    require_root();
    let mut server = NatsServer::start();
    let user = TestUser::create("natsaway");
    let token = user.write(
        ".git-credentials",
        &format!("https://kt:{SECRET}@github.com\n"),
    );
    let (policy, spool) = policy_with_spool("nats-away");
    let mut k = Keytrail::start(&[
        "--config",
        policy.to_str().unwrap(),
        "--nats",
        &server.url(),
        "--stats-interval",
        "1s",
    ]);
    server.kill();
    // Ten seconds of reads, a new process each, while the bus is away.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut readers = 0;
    while Instant::now() < deadline {
        run(Command::new("sh").arg("-c").arg(format!(
            "for i in 1 2 3 4 5 6 7 8 9 10; do cat {} >/dev/null; done",
            token.display()
        )));
        readers += 10;
        std::thread::sleep(Duration::from_millis(100));
    }
    k.settle(Duration::from_millis(500));
    let waiting = k
        .records
        .iter()
        .rev()
        .find(|r| r["type"] == "stats")
        .map(|s| s["fleet"]["spooled_bytes"].as_u64().unwrap_or(0))
        .unwrap_or(0);
    assert!(
        waiting > 0,
        "nothing waited in the spool while the server was away"
    );
    assert!(spool.exists());
    server.resume();
    // Until the stats say the spool is empty again.
    let emptied = Instant::now() + Duration::from_secs(30);
    loop {
        k.settle(Duration::from_millis(1000));
        let last = k
            .records
            .iter()
            .rev()
            .find(|r| r["type"] == "stats")
            .unwrap();
        if last["fleet"]["spooled_bytes"] == 0 && Instant::now() > deadline {
            break;
        }
        assert!(Instant::now() < emptied, "the spool did not empty: {last}");
    }
    let (records, stderr) = k.stop();
    let accesses = records
        .iter()
        .filter(|r| r["type"] == "credential_access")
        .count();
    assert!(
        accesses >= readers / 2,
        "{accesses} reads recorded of {readers}"
    );
    assert!(
        stderr.contains("does not answer") && stderr.contains("answers again"),
        "{stderr}"
    );
    assert_each_once(&records, &server.messages());
    drop(user);
}
