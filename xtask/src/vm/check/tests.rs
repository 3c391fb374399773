use serde_json::json;

use super::*;

const PASSES: &[&str] = &["default", "tp_btf,tracepoint,lsm"];

/// The console of a VM where every pass went right, on a 6.12 kernel with BPF LSM.
fn good_pass(name: &str) -> String {
    let kernel = Kernel {
        release: None,
        filemap: true,
        send_tracepoint: true,
        bpf_lsm: true,
    };
    let skipped: Vec<&str> = if name == "default" {
        vec![]
    } else {
        name.split(',').collect()
    };
    let (read, mmap, open) = expected_hooks(&kernel, &skipped);
    let hooks: Vec<_> = [
        ("credential-read", read),
        ("credential-read", mmap),
        ("credential-open", open),
        ("proof", expected_proof_hook(&kernel, &skipped)),
    ]
    .into_iter()
    .map(|(purpose, hook)| json!({"purpose": purpose, "hook": hook.unwrap()}))
    .collect();
    let access = |argv: &[&str], path: &str, hook: &str| {
        json!({"type": "credential_access", "hook": hook, "credential": {"path": path},
               "process": {"argv": argv}})
    };
    let mut records = vec![json!({"type": "ready", "hooks": hooks})];
    for (method, hook) in HELD_READS {
        records.push(access(
            &["kt-vm-helper", "hold", method],
            PAGE_CACHE_CREDENTIAL,
            hook,
        ));
    }
    records.push(access(
        &["cat", "/mnt/aws/credentials"],
        PAGE_CACHE_CREDENTIAL,
        "open",
    ));
    records.push(access(
        &["cat", "/proc/1/root/root/.aws/credentials"],
        PAGE_CACHE_CREDENTIAL,
        "open",
    ));
    records.push(access(&["cat", TMPFS_CREDENTIAL], TMPFS_CREDENTIAL, "open"));
    records.push(
        json!({"type": "credential_use", "process": {"argv": ["nc", "127.0.0.1", "9000"]},
                        "endpoint": {"port": 9000}}),
    );
    records.push(json!({"type": "credential_use", "process": {"argv": ["curl"]},
                        "endpoint": {"port": 9445}, "proof": "sent", "request": {"path": "/proof"}}));
    for (host, source) in [("api.example.test", "dns"), ("tls.example.test", "tls_sni")] {
        records.push(
            json!({"type": "credential_use", "process": {"argv": ["curl"]},
                            "endpoint": {"port": 9443, "host": host, "host_source": source}}),
        );
    }
    records.push(json!({"type": "stats", "dropped": 0}));
    let records: Vec<String> = records.iter().map(Value::to_string).collect();
    format!(
        "KT-PASS {name}\nkt-vm-helper: 5000 opens and reads of /root/.aws/notes, 41.2µs each\n\
         KT-EXIT 0\nKT-RECORDS-BEGIN\n{}\nKT-RECORDS-END\nKT-LOG-BEGIN\n\
         [INFO] kernel statistics: tp_btf/mm_filemap_get_pages ran 5012 times, 212 ns each on average, missed 0\n\
         KT-LOG-END\n",
        records.join("\n")
    )
}

fn good() -> String {
    let passes: String = PASSES.iter().map(|p| good_pass(p)).collect();
    format!("KT-KERNEL 6.12.117+deb12-amd64\nKT-LSM lockdown,capability,bpf\n{passes}KT-DONE\n")
}

#[test]
fn a_good_run_passes_every_check() {
    let boot = judge(&good(), "tok", PASSES);
    assert_eq!(boot.kernel.release.as_deref(), Some("6.12.117+deb12-amd64"));
    assert!(boot.kernel.filemap && boot.kernel.bpf_lsm);
    let failures: Vec<_> = boot.all_checks().filter(|(_, r)| r.is_err()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(boot.passed() > 30);
    assert_eq!(
        boot.passes[0].statistics,
        vec![("tp_btf/mm_filemap_get_pages".into(), 5012, 212, 0)]
    );
    assert_eq!(boot.passes[0].loop_time.as_deref(), Some("41.2µs"));
}

#[test]
fn each_kind_of_wrong_run_fails_a_check() {
    let failed = |console: String| judge(&console, "tok", PASSES).failed();
    // A held read the kernel skipped and counted for its hook is excused; one counted for
    // another hook, or not at all, is not.
    let unseen = good().replacen(
        r#""argv":["kt-vm-helper","hold","pread"]"#,
        r#""argv":[]"#,
        1,
    );
    assert_eq!(failed(unseen.clone()), 1);
    let line = "tp_btf/mm_filemap_get_pages ran 5012 times, 212 ns each on average, missed ";
    let counted = unseen.replacen(&format!("{line}0"), &format!("{line}1"), 1);
    assert_eq!(failed(counted), 0);
    let elsewhere = unseen.replacen(
        "[INFO] kernel",
        "[INFO] kernel statistics: lsm/file_open ran 9 times, 9 ns each on average, missed 5\n\
         [INFO] kernel",
        1,
    );
    assert_eq!(failed(elsewhere), 1);
    // A probe that never fires: the held read is seen at open, or not at all.
    assert_eq!(
        failed(good().replacen(
            r#""hook":"read","process":{"argv":["kt-vm-helper","hold","read"]"#,
            r#""hook":"open","process":{"argv":["kt-vm-helper","hold","read"]"#,
            1
        )),
        1
    );
    // The wrong hook chosen.
    assert_eq!(
        failed(good().replace("lsm/file_open", "fentry/security_file_open")),
        1
    );
    // A connect without a read made into a use.
    assert_eq!(
        failed(good().replace(r#""port":9000}"#, r#""port":9001}"#)),
        4
    );
    // A name not learned.
    assert!(failed(good().replace(r#""host_source":"dns""#, r#""host_source":null"#)) >= 1);
    // A leaked secret, a hung VM, a missing pass.
    assert_eq!(failed(good().replace("[INFO]", "[INFO] tok")), 2);
    assert!(failed(good().replace("KT-DONE", "")) >= 1);
    // A TLS request not read: proof of use failed in both passes.
    assert_eq!(
        failed(good().replace(r#""proof":"sent""#, r#""proof":"inferred""#)),
        2
    );
    let one_pass = good().replace("KT-PASS tp_btf,tracepoint,lsm", "KT-PASSED");
    assert!(failed(one_pass) >= 1);
}

#[test]
fn expected_hooks_follow_the_kernel_and_the_skipped_kinds() {
    let old = Kernel {
        release: None,
        filemap: false,
        send_tracepoint: false,
        bpf_lsm: false,
    };
    assert_eq!(
        expected_hooks(&old, &[]),
        (
            Some("fentry/security_file_permission"),
            Some("fentry/security_mmap_file"),
            Some("fentry/security_file_open")
        )
    );
    assert_eq!(expected_hooks(&old, &["lsm", "fentry", "kprobe"]).0, None);
    assert_eq!(
        expected_hooks(&old, &["lsm", "fentry", "kprobe"]).2,
        Some("tracepoint/syscalls/sys_exit_openat")
    );
    assert_eq!(expected_proof_hook(&old, &[]), Some("kprobe/tcp_sendmsg"));
    assert_eq!(expected_proof_hook(&old, &["kprobe"]), None);
    assert!(at_least("6.11.0-1-amd64", (6, 11)) && !at_least("6.1.0-57-amd64", (6, 11)));
    assert!(at_least("7.3.4+deb13-amd64", (6, 11)) && !at_least("5.10.0-46-amd64", (6, 11)));
}
