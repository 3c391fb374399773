//! The daemon's own life: ready first, clean stop with stats, nothing lost, clear errors.
//! Needs root: run with `cargo xtask test`.
use std::{fs, os::unix::fs::PermissionsExt, process::Command, time::Duration};

use keytrail_tests::*;

#[test]
fn ready_names_its_hooks_and_stop_prints_stats_with_nothing_dropped() {
    require_root();
    let running = fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        })
        .count() as u64;
    let k = Keytrail::start(&[]);
    let ready = k.records[0].clone();
    let hooks: Vec<&str> = ready["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hook"].as_str().unwrap())
        .collect();
    for expected in [
        "raw_tp/sched_process_exec",
        "raw_tp/sched_process_fork",
        "raw_tp/sched_process_exit",
        "cgroup_sock_addr/connect4",
        "cgroup_sock_addr/connect6",
    ] {
        assert!(hooks.contains(&expected), "{expected} in {hooks:?}");
    }
    // Seeded from procfs: about what was running just before (a few may have come or gone).
    let seeded = ready["processes"].as_u64().unwrap();
    assert!(
        seeded + 20 >= running,
        "the tracker is seeded from procfs: {seeded} of {running} processes"
    );
    run(&mut Command::new("true")); // a fork, an exec and an exit the kernel must report
    let (records, _) = k.stop();
    let stats = records.last().unwrap();
    assert_eq!(stats["type"], "stats");
    assert!(
        stats["events"].as_u64().unwrap() >= 3,
        "the fork, exec and exit of `true` were seen: {stats}"
    );
    assert_eq!(stats["dropped"], 0);
    assert_eq!(stats["findings"], 0);
}

#[test]
fn catalog_lists_a_users_credentials() {
    require_root();
    let user = TestUser::create("cat");
    let key = user.write(".ssh/id_ed25519", "not a real key");
    user.write(".ssh/id_ed25519.pub", "public");
    let listed = catalog_json();
    let ssh = listed
        .iter()
        .find(|c| c["path"] == path_str(&key))
        .expect("the private key is listed");
    assert_eq!(ssh["kind"], "ssh");
    assert!(
        !listed
            .iter()
            .any(|c| c["path"].as_str().unwrap().ends_with(".pub"))
    );
}

#[test]
fn bad_arguments_get_a_clear_error() {
    let out = Command::new(keytrail_bin())
        .args(["run", "--watch", "/x=notakind"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown credential kind 'notakind'"),
        "{stderr}"
    );
}

#[test]
fn sigquit_stops_cleanly_and_sighup_does_not_stop() {
    require_root();
    let mut k = Keytrail::start(&[]);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(k.pid() as i32, libc::SIGHUP) };
    k.settle(Duration::from_millis(300));
    assert!(k.running(), "SIGHUP does not stop keytrail");
    let (records, _) = k.stop_with(libc::SIGQUIT);
    assert_eq!(records.last().unwrap()["type"], "stats");
}

/// SIGHUP reads the policy again from where it came (here the file `KEYTRAIL_CONFIG` names,
/// which `ready` says): a broken file is refused with its line, and the running policy stays; a
/// good one takes effect at once, without a restart: a credential path it adds is watched.
#[test]
fn sighup_reloads_the_policy_and_refuses_a_broken_one() {
    require_root();
    let dir = scratch_dir("reload");
    let token = dir.join("deploy-token");
    fs::write(&token, "kt-reload-token-3f9d\n").unwrap();
    let policy = dir.join("policy.toml");
    let default =
        String::from_utf8(run(Command::new(keytrail_bin()).args(["policy", "--default"])).stdout)
            .unwrap();
    fs::write(&policy, &default).unwrap();
    let mut k = Keytrail::start_with_env(&[], &[("KEYTRAIL_CONFIG", policy.as_os_str())]);
    assert_eq!(
        k.records[0]["policy"],
        path_str(&policy),
        "{}",
        k.records[0]
    );
    let hangup = |k: &Keytrail| {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(k.pid() as i32, libc::SIGHUP) };
    };
    let read_token = || run(Command::new("cat").arg(&token));
    read_token();
    k.settle(Duration::from_millis(500));
    let seen = |k: &Keytrail| {
        k.records.iter().any(|r| {
            r["type"] == "credential_access" && r["credential"]["path"] == path_str(&token)
        })
    };
    assert!(!seen(&k), "not a credential before the reload");

    fs::write(
        &policy,
        format!("{default}\n[[credentials]]\nkind = \"awz\"\n"),
    )
    .unwrap();
    hangup(&k);
    k.settle(Duration::from_millis(500));
    assert!(k.running(), "a broken policy does not stop keytrail");

    fs::write(
        &policy,
        format!(
            "{default}\n[[credentials]]\nkind = \"generic\"\npaths = [{:?}]\n",
            path_str(&token)
        ),
    )
    .unwrap();
    hangup(&k);
    k.settle(Duration::from_millis(500));
    let reader = run_pid(Command::new("cat").arg(&token));
    k.wait_for("the read of the path the reload added", WAIT, |r| {
        r["type"] == "credential_access" && r["process"]["pid"] == reader
    });
    let (_, stderr) = k.stop();
    let refused = format!(
        "policy not reloaded, the running one stays: {}:",
        path_str(&policy)
    );
    assert!(
        stderr.contains(&refused) && stderr.contains("awz"),
        "{stderr}"
    );
    assert!(stderr.contains("policy reloaded from"), "{stderr}");
    let _ = fs::remove_dir_all(dir);
}

/// `--output FILE` appends records to the file; after logrotate moves it away and sends
/// SIGHUP, the next records go to a new file at the path, and none is lost or split.
#[test]
fn an_output_file_is_reopened_on_sighup_as_logrotate_expects() {
    require_root();
    let dir = scratch_dir("output");
    let (out, rotated) = (dir.join("keytrail.ndjson"), dir.join("keytrail.ndjson.1"));
    let mut child = Command::new(keytrail_bin())
        .args(["run", "--format", "json", "--output"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let records = |path: &std::path::Path| -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("whole NDJSON lines"))
            .collect()
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + WAIT;
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what} within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("ready record in the file", &|| {
        records(&out).first().is_some_and(|r| r["type"] == "ready")
    });
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o640
    );
    fs::rename(&out, &rotated).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    // The file is made at the next batch: the stats record at stop, at the latest.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
    let (before, after) = (records(&rotated), records(&out));
    assert_eq!(
        before.len(),
        1,
        "only ready went before the rotation: {before:?}"
    );
    assert_eq!(after.last().unwrap()["type"], "stats", "{after:?}");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_closed_output_stops_keytrail_with_its_own_status_and_the_stats_in_the_log() {
    use std::io::{BufRead, BufReader};
    require_root();
    let user = TestUser::create("pipe");
    let netrc = user.write(
        ".netrc",
        "machine 127.0.0.1 login bot password kt-pipe-secret-1\n",
    );
    let mut child = Command::new(keytrail_bin())
        .args(["run", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    assert!(ready.contains("\"ready\""), "{ready}");
    drop(stdout); // the reader goes away
    // Something to write: keytrail finds its output closed when it writes it.
    for _ in 0..20 {
        run(user.command("cat").arg(&netrc));
        std::thread::sleep(Duration::from_millis(100));
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("\"type\":\"stats\""), "{stderr}");
    assert!(!stderr.contains("kt-pipe-secret-1"), "{stderr}");
}

#[test]
fn stats_come_on_an_interval_while_running_and_at_stop() {
    require_root();
    let mut k = Keytrail::start(&["--stats-interval", "1s"]);
    k.wait_for(
        "a stats record while running",
        Duration::from_secs(5),
        |r| r["type"] == "stats",
    );
    run(&mut Command::new("true"));
    k.settle(Duration::from_millis(1500));
    let (records, _) = k.stop();
    let events: Vec<u64> = records
        .iter()
        .filter(|r| r["type"] == "stats")
        .map(|r| r["events"].as_u64().unwrap())
        .collect();
    assert!(
        events.len() >= 3,
        "two while running, one at stop: {events:?}"
    );
    assert!(
        events.windows(2).all(|w| w[0] <= w[1]),
        "counts since start: {events:?}"
    );
    assert_eq!(records.last().unwrap()["type"], "stats");
}

/// `--metrics ADDR`: a Prometheus scrape (curl, as a scraper sends it) gets the records
/// written by type, the kernel's events, the lag histogram and the catalog's size, matching
/// the NDJSON stream; any other path is a 404.
#[test]
fn metrics_are_served_for_prometheus() {
    require_root();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let user = TestUser::create("metrics");
    let token = user.write(
        ".git-credentials",
        "https://kt:kt-metrics-token-77@github.com\n",
    );
    let mut k = Keytrail::start(&["--metrics", &address, "--stats-interval", "1s"]);
    let reader = run_pid(Command::new("cat").arg(&token));
    k.wait_for("the read", WAIT, |r| {
        r["type"] == "credential_access" && r["process"]["pid"] == reader
    });
    k.wait_for("a stats record after it", WAIT, |r| r["type"] == "stats");
    let scrape = |path: &str| {
        Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
            .arg(format!("http://{address}{path}"))
            .output()
            .expect("curl")
    };
    let body = String::from_utf8(scrape("/metrics").stdout).unwrap();
    assert!(body.ends_with("\n200"), "{body}");
    let value = |line_start: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{body}"))
    };
    assert!(value("keytrail_records_total{type=\"credential_access\"}") >= 1.0);
    assert!(value("keytrail_records_total{type=\"ready\"}") == 1.0);
    assert!(value("keytrail_kernel_events_total") >= 1.0);
    assert!(value("keytrail_record_lag_seconds_count") >= 1.0);
    let watched = k.records[0]["credentials"].as_f64().unwrap();
    assert_eq!(value("keytrail_credentials_watched"), watched);
    assert!(value("keytrail_resident_memory_bytes") > 1e6);
    assert!(value("keytrail_processes_tracked") >= 1.0);
    assert!(!body.contains("kt-metrics-token-77"));
    let other = String::from_utf8(scrape("/").stdout).unwrap();
    assert!(other.ends_with("404"), "{other}");
    k.stop();
}

/// A shell script that moves itself into a cgroup of its own below the cgroup2 root (its path
/// written to `$0.child`, for the test to remove), then runs `then` (`$root` is the root's
/// mount, `$1` keytrail).
fn in_a_child_cgroup(then: &str) -> String {
    format!(
        r#"set -e
root=$(awk '$3 == "cgroup2" {{ print $2; exit }}' /proc/self/mounts)
child="$root/keytrail-cgns-test-$$"
mkdir "$child"
echo "$child" > "$0.child"
echo $$ > "$child/cgroup.procs"
{then}
"#
    )
}

/// In a cgroup namespace (a container given no host cgroup mount), the cgroup2 mount's top is
/// the namespace's cgroup: hooks there would see that cgroup's connections only. keytrail
/// refuses to start, and says what to mount, rather than watch a fraction of the machine.
#[test]
fn in_a_cgroup_namespace_keytrail_refuses_to_hook_a_child_cgroup() {
    require_root();
    // A shell moves itself into a cgroup of its own below the root, makes that its
    // namespace's root, mounts the cgroup2 hierarchy as a container runtime would, and
    // becomes keytrail.
    let script = in_a_child_cgroup(
        r#"exec unshare --cgroup --mount sh -c 'umount -l "$0" && mount -t cgroup2 cgroup2 "$0" && exec "$1" run' "$root" "$1""#,
    );
    let marker = scratch_dir("cgns").join("run");
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(&marker)
        .arg(keytrail_bin())
        .output()
        .unwrap();
    let child = fs::read_to_string(marker.with_extension("child")).unwrap();
    fs::remove_dir(child.trim()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "keytrail started in a cgroup namespace"
    );
    assert!(
        stderr.contains("is not its root") && stderr.contains("/sys/fs/cgroup"),
        "{stderr}"
    );
}

/// A container that sees the host's processes (a DaemonSet's hostPID) but has a cgroup
/// namespace of its own reads every process's cgroup relative to that namespace. keytrail
/// joins the initial cgroup namespace (through a process it sees there: this test's) before
/// it starts, says so, and runs.
#[test]
fn in_a_cgroup_namespace_with_the_hosts_hierarchy_keytrail_joins_the_initial_one() {
    require_root();
    let script =
        in_a_child_cgroup(r#"exec unshare --cgroup "$1" run --format json --stats-interval 0s"#);
    let marker = scratch_dir("cgns-join").join("run");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(&marker)
        .arg(keytrail_bin())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().next()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !first.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: a signal to a child of ours (the shell became keytrail).
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let cgroup = fs::read_to_string(marker.with_extension("child")).unwrap();
    fs::remove_dir(cgroup.trim()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ready = first
        .join()
        .unwrap()
        .and_then(Result::ok)
        .unwrap_or_default();
    assert!(
        ready.contains("\"type\":\"ready\""),
        "no ready record: {ready}\n{stderr}"
    );
    assert!(
        stderr.contains("joined the initial cgroup namespace"),
        "{stderr}"
    );
    assert!(out.status.success(), "{}: {stderr}", out.status);
}

/// After load keytrail keeps CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, CAP_PERFMON and CAP_BPF, in
/// every set including the bounding set, with no_new_privs; and still does its work with them:
/// a credential a user writes after start (a file of theirs, mode 0600) is read and reported.
#[test]
fn after_load_only_the_needed_capabilities_are_kept() {
    require_root();
    let user = TestUser::create("caps");
    let mut k = Keytrail::start(&[]);
    let status = fs::read_to_string(format!("/proc/{}/status", k.pid())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    let kept = format!("{:016x}", (1u64 << 2) | (1 << 19) | (1 << 38) | (1 << 39));
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(field(set), kept, "{set}");
    }
    assert_eq!(field("CapInh:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");

    let token = user.write(".vault-token", "kt-caps-token-5e1d0a");
    k.settle(Duration::from_millis(500));
    let pid = run_pid(user.command("cat").arg(&token));
    k.wait_for("the new credential read", Duration::from_secs(10), |r| {
        r["type"] == "credential_access" && r["process"]["pid"] == pid
    });
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &["kt-caps-token-5e1d0a"]);
}

/// Credential files as their own tools write them: npm (`npm config set`), kubectl (`kubectl
/// config set-credentials` / `set-cluster`) and git (`git credential-store store`, which
/// percent-encodes). Each is listed with its kind, the host it names as scope, and the secret
/// in it: the same token in all three is one secret, so one identity.
#[test]
fn credential_files_written_by_their_own_tools_are_understood() {
    require_root();
    for tool in ["npm", "kubectl", "git"] {
        if tool_missing(tool) {
            panic!("{tool} is not installed: ./xtask/setup.sh installs it");
        }
    }
    let user = TestUser::create("tools");
    let token = "kt-tools-token:9f31@x";
    let npmrc = user.home.join(".npmrc");
    run(user.command("npm").args([
        "config",
        "set",
        &format!("//127.0.0.1:4873/:_authToken={token}"),
        "--userconfig",
        &path_str(&npmrc),
    ]));
    let kubeconfig = user.home.join(".kube/config");
    for args in [
        vec!["set-cluster", "kt", "--server=https://127.0.0.2:6443"],
        vec!["set-credentials", "bot", &format!("--token={token}")],
    ] {
        run(user
            .command("kubectl")
            .args(["config", "--kubeconfig", &path_str(&kubeconfig)])
            .args(args));
    }
    let git = user.git_store("https", "127.0.0.3:8443", "bot", token);

    let listed = catalog_json();
    let entry = |path: &std::path::Path| {
        listed
            .iter()
            .find(|c| c["path"] == path_str(path))
            .unwrap_or_else(|| panic!("{} is not listed: {listed:?}", path.display()))
    };
    let (npm, kube, git) = (entry(&npmrc), entry(&kubeconfig), entry(&git));
    assert_eq!(
        (&npm["kind"], &kube["kind"], &git["kind"]),
        (&"npm".into(), &"kube".into(), &"git".into())
    );
    for (credential, cidr) in [
        (npm, "127.0.0.1/32"),
        (kube, "127.0.0.2/32"),
        (git, "127.0.0.3/32"),
    ] {
        let cidrs = credential["scope"]["cidrs"].to_string();
        assert!(cidrs.contains(cidr), "{cidr} in {credential}");
    }
    // One secret in three files: one identity (the file it was first seen in).
    for credential in [npm, kube, git] {
        assert_eq!(credential["secrets"], 1, "{credential}");
    }
    assert_eq!(npm["identity"], kube["identity"], "{npm} {kube}");
    assert_eq!(npm["identity"], git["identity"], "{npm} {git}");
    assert!(!listed.iter().any(|c| c.to_string().contains(token)));
}

fn tool_missing(tool: &str) -> bool {
    !std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .any(|dir| dir.join(tool).is_file())
}
