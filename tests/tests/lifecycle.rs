//! The daemon's own life: ready first, clean stop with stats, nothing lost, clear errors.
//! Needs root: run with `cargo xtask test`.
use std::process::Command;

use keytrail_tests::*;

#[test]
fn ready_names_its_hooks_and_stop_prints_stats_with_nothing_dropped() {
    require_root();
    let running = std::fs::read_dir("/proc")
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
    let out = run(Command::new(keytrail_bin()).args(["catalog", "--format", "json"]));
    let listed: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
