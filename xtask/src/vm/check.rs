//! Judging one VM's serial console: what keytrail printed between the markers /init writes
//! (xtask/vm/init.sh), checked against what the scenarios did. Pure, so it is unit-tested.
use serde_json::Value;

/// What one boot showed.
pub struct Outcome {
    pub kernel: Option<String>,
    /// hook names from the `ready` record, by purpose ("credential-open=lsm/file_open").
    pub hooks: Vec<String>,
    pub checks: Vec<(&'static str, Result<(), String>)>,
}

impl Outcome {
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|(_, r)| r.is_ok()).count()
    }
    pub fn failed(&self) -> usize {
        self.checks.len() - self.passed()
    }
}

fn section<'a>(serial: &'a str, name: &str) -> Option<&'a str> {
    let begin = format!("KT-{name}-BEGIN");
    let end = format!("KT-{name}-END");
    let start = serial.find(&begin)? + begin.len();
    let stop = serial[start..].find(&end)? + start;
    Some(&serial[start..stop])
}

fn marker<'a>(serial: &'a str, name: &str) -> Option<&'a str> {
    serial.lines().find_map(|l| {
        l.trim_end_matches('\r')
            .strip_prefix(name)
            .map(|v| v.trim())
    })
}

/// The program a record's process runs, as invoked: busybox's shell runs applets through
/// /proc/self/exe, so `comm` is "exe" and only argv[0] says which.
fn program(record: &Value) -> &str {
    record["process"]["argv"][0].as_str().unwrap_or_default()
}

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why()) }
}

/// `lsm`: whether the kernel was booted with BPF LSM enabled (so `lsm/file_open` must be used).
pub fn judge(serial: &str, token: &str, lsm: bool) -> Outcome {
    let kernel = marker(serial, "KT-KERNEL ").map(str::to_owned);
    let records: Vec<Value> = section(serial, "RECORDS")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect();
    let log = section(serial, "LOG").unwrap_or_default();
    let find = |kind: &str, pred: &dyn Fn(&Value) -> bool| {
        records.iter().any(|r| r["type"] == kind && pred(r))
    };
    let ready = records.iter().find(|r| r["type"] == "ready");
    let hooks: Vec<String> = ready
        .and_then(|r| r["hooks"].as_array())
        .into_iter()
        .flatten()
        .map(|h| {
            format!(
                "{}={}",
                h["purpose"].as_str().unwrap_or("?"),
                h["hook"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let summary = || {
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        format!("keytrail's last log lines: {tail:?}")
    };
    let open_hook = if lsm {
        "credential-open=lsm/file_open"
    } else {
        "credential-open=tracepoint/syscalls/sys_exit_openat"
    };
    let checks = vec![
        (
            "the VM ran to the end (no panic, hang or early exit)",
            check(serial.contains("KT-DONE"), || {
                let tail: Vec<&str> = serial.lines().rev().take(8).collect();
                format!("no KT-DONE line; console ends with {tail:?}")
            }),
        ),
        (
            "keytrail started and listed its hooks",
            check(ready.is_some(), summary),
        ),
        (
            "credential opens use the expected hook",
            check(hooks.iter().any(|h| h == open_hook), || {
                format!("wanted {open_hook}, hooks were {hooks:?}")
            }),
        ),
        (
            "cat reading /root/.netrc is a credential_access",
            check(
                find("credential_access", &|r| {
                    program(r) == "cat" && r["credential"]["path"] == "/root/.netrc"
                }),
                summary,
            ),
        ),
        (
            "a shell's read then nc's connect is a credential_use",
            check(
                find("credential_use", &|r| {
                    program(r) == "nc" && r["endpoint"]["port"] == 9000
                }),
                summary,
            ),
        ),
        (
            "keytrail stopped cleanly with nothing dropped",
            check(
                marker(serial, "KT-EXIT ") == Some("0") && find("stats", &|r| r["dropped"] == 0),
                summary,
            ),
        ),
        (
            "the secret is printed nowhere",
            check(
                !section(serial, "RECORDS")
                    .unwrap_or_default()
                    .contains(token)
                    && !log.contains(token),
                || "the token appears in keytrail's output".into(),
            ),
        ),
    ];
    Outcome {
        kernel,
        hooks,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"KT-KERNEL 6.12.117+deb12-amd64
KT-EXIT 0
KT-RECORDS-BEGIN
{"type":"ready","time":"t","hooks":[{"purpose":"credential-open","hook":"lsm/file_open"}]}
{"type":"credential_access","time":"t","credential":{"path":"/root/.netrc"},"process":{"argv":["cat","/root/.netrc"]}}
{"type":"credential_use","time":"t","process":{"argv":["nc","127.0.0.1","9000"]},"endpoint":{"port":9000}}
{"type":"stats","time":"t","dropped":0}
KT-RECORDS-END
KT-LOG-BEGIN
[INFO] watching 1 credentials
KT-LOG-END
KT-DONE
"#;

    #[test]
    fn a_good_run_passes_every_check() {
        let o = judge(GOOD, "tok", true);
        assert_eq!(o.kernel.as_deref(), Some("6.12.117+deb12-amd64"));
        assert_eq!(o.failed(), 0, "{:?}", o.checks);
        // The same run judged as a fallback kernel fails exactly the hook check.
        assert_eq!(judge(GOOD, "tok", false).failed(), 1);
    }

    #[test]
    fn a_hung_vm_or_a_leaked_secret_fails() {
        let hung = &GOOD[..GOOD.find("KT-RECORDS-END").unwrap()];
        let o = judge(hung, "tok", true);
        assert!(o.failed() >= 2, "{:?}", o.checks);
        let leaked = GOOD.replace("[INFO]", "[INFO] tok");
        assert_eq!(judge(&leaked, "tok", true).failed(), 1);
    }
}
