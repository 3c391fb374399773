//! Judging one VM's serial console: what keytrail printed in each pass (xtask/vm/init.sh),
//! checked against what the pass did and against the hooks the pass should have chosen. Pure, so
//! it is unit-tested.
use serde_json::Value;

/// The credential on a page-cache filesystem (ramfs) and the one on tmpfs.
const PAGE_CACHE_CREDENTIAL: &str = "/root/.aws/credentials";
const TMPFS_CREDENTIAL: &str = "/root/.netrc";
/// How kt-vm-helper reads the page-cache credential, through a descriptor opened before
/// keytrail started, and the record's `hook` each must give.
const HELD_READS: &[(&str, &str)] = &[
    ("read", "read"),
    ("pread", "read"),
    ("mmap", "mmap"),
    ("io_uring", "read"),
    ("sendfile", "read"),
    ("splice", "read"),
];

/// Named claims, each kept or broken with the reason.
pub type Checks = Vec<(String, Result<(), String>)>;

/// What the kernel offers, as the console says.
pub struct Kernel {
    pub release: Option<String>,
    /// The `sock_send_length` tracepoint exists (Linux 6.3 and later).
    pub send_tracepoint: bool,
    /// The filemap tracepoints exist (Linux 6.11 and later).
    pub filemap: bool,
    /// `bpf` is among the active LSMs.
    pub bpf_lsm: bool,
}

/// What one boot showed.
pub struct Boot {
    pub kernel: Kernel,
    pub passes: Vec<Pass>,
    /// Checks of the boot as a whole.
    pub checks: Checks,
}

/// What one pass (one keytrail run, some kinds of hook skipped) showed.
pub struct Pass {
    /// The `--skip-hooks` value, or "default".
    pub name: String,
    /// Hooks from the `ready` record, by purpose ("credential-open=lsm/file_open").
    pub hooks: Vec<String>,
    pub checks: Checks,
    /// The kernel's statistics per hook that ran: (hooks, runs, mean ns, runs missed).
    pub statistics: Vec<(String, u64, u64, u64)>,
    /// The helper's open+read+close loop, time per iteration as it printed it.
    pub loop_time: Option<String>,
}

impl Boot {
    fn all_checks(&self) -> impl Iterator<Item = &(String, Result<(), String>)> {
        self.checks
            .iter()
            .chain(self.passes.iter().flat_map(|p| &p.checks))
    }
    pub fn passed(&self) -> usize {
        self.all_checks().filter(|(_, r)| r.is_ok()).count()
    }
    pub fn failed(&self) -> usize {
        self.all_checks().count() - self.passed()
    }
}

fn section<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let begin = format!("KT-{name}-BEGIN");
    let end = format!("KT-{name}-END");
    let start = text.find(&begin)? + begin.len();
    let stop = text[start..].find(&end)? + start;
    Some(&text[start..stop])
}

fn marker<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.trim_end_matches('\r')
            .strip_prefix(name)
            .map(|v| v.trim())
    })
}

/// The program a record's process runs, as invoked: busybox's shell runs applets through
/// /proc/self/exe, so `comm` is "exe" and only argv[0] says which.
fn argv(record: &Value, i: usize) -> &str {
    record["process"]["argv"][i].as_str().unwrap_or_default()
}

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why()) }
}

/// The first hook of `chain` the kernel offers and the pass did not skip.
fn first_offered(chain: &[(&'static str, bool)], skipped: &[&str]) -> Option<&'static str> {
    chain
        .iter()
        .find(|(hook, offered)| {
            *offered && !skipped.contains(&hook.split('/').next().unwrap_or_default())
        })
        .map(|(hook, _)| *hook)
}

/// The hooks a pass should choose for credential reads, mmaps and opens: the probe table's
/// chains, written out again here so that a change to the table must be meant.
fn expected_hooks(
    kernel: &Kernel,
    skipped: &[&str],
) -> (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
) {
    let read = first_offered(
        &[
            ("tp_btf/mm_filemap_get_pages", kernel.filemap),
            ("tracepoint/filemap/mm_filemap_get_pages", kernel.filemap),
            ("fentry/security_file_permission", true),
            ("kprobe/security_file_permission", true),
        ],
        skipped,
    );
    let mmap = first_offered(
        &[
            ("tp_btf/mm_filemap_fault", kernel.filemap),
            ("tracepoint/filemap/mm_filemap_fault", kernel.filemap),
            ("fentry/security_mmap_file", true),
            ("kprobe/security_mmap_file", true),
        ],
        skipped,
    );
    let open = first_offered(
        &[
            ("lsm/file_open", kernel.bpf_lsm),
            ("fentry/security_file_open", true),
            ("kprobe/security_file_open", true),
            // Needed here: /root/.netrc is on tmpfs.
            ("tracepoint/syscalls/sys_exit_openat", true),
        ],
        skipped,
    );
    (read, mmap, open)
}

/// The hook a pass should choose for proof of use over TLS.
fn expected_proof_hook(kernel: &Kernel, skipped: &[&str]) -> Option<&'static str> {
    first_offered(
        &[
            ("tp_btf/sock_send_length", kernel.send_tracepoint),
            ("kprobe/tcp_sendmsg", true),
        ],
        skipped,
    )
}

pub fn judge(serial: &str, token: &str, passes: &[&str]) -> Boot {
    let release = marker(serial, "KT-KERNEL ").map(str::to_owned);
    let kernel = Kernel {
        filemap: release.as_deref().is_some_and(|r| at_least(r, (6, 11))),
        send_tracepoint: release.as_deref().is_some_and(|r| at_least(r, (6, 3))),
        bpf_lsm: marker(serial, "KT-LSM ").is_some_and(|l| l.split(',').any(|m| m == "bpf")),
        release,
    };
    // Each pass's output runs from its "KT-PASS" line to the next one.
    let mut chunks: Vec<(&str, &str)> = Vec::new();
    let mut rest = serial;
    while let Some(at) = rest.find("KT-PASS ") {
        let body = &rest[at + "KT-PASS ".len()..];
        let name_end = body.find('\n').unwrap_or(body.len());
        let next = body.find("KT-PASS ").unwrap_or(body.len());
        chunks.push((body[..name_end].trim(), &body[..next]));
        rest = &body[next..];
    }
    let mut checks = vec![(
        "the VM ran to the end (no panic, hang or early exit)".to_owned(),
        check(serial.contains("KT-DONE"), || {
            let tail: Vec<&str> = serial.lines().rev().take(8).collect();
            format!("no KT-DONE line; console ends with {tail:?}")
        }),
    )];
    let ran: Vec<&str> = chunks.iter().map(|(name, _)| *name).collect();
    checks.push((
        format!("every pass ran ({})", passes.join("; ")),
        check(ran == passes, || format!("passes run: {ran:?}")),
    ));
    let passes = chunks
        .iter()
        .map(|(name, text)| judge_pass(name, text, &kernel, token))
        .collect();
    Boot {
        kernel,
        passes,
        checks,
    }
}

fn judge_pass(name: &str, text: &str, kernel: &Kernel, token: &str) -> Pass {
    let enforce = name == "enforce";
    let skipped: Vec<&str> = if name == "default" || enforce {
        Vec::new()
    } else {
        name.split(',').collect()
    };
    let records: Vec<Value> = section(text, "RECORDS")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect();
    let log = section(text, "LOG").unwrap_or_default();
    let find = |kind: &str, pred: &dyn Fn(&Value) -> bool| {
        records.iter().find(|r| r["type"] == kind && pred(r))
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
    let mut checks: Vec<(String, Result<(), String>)> = Vec::new();
    checks.push((
        "keytrail started, stopped cleanly and dropped nothing".into(),
        check(
            ready.is_some()
                && marker(text, "KT-EXIT ") == Some("0")
                && find("stats", &|r| r["dropped"] == 0).is_some(),
            summary,
        ),
    ));

    let (read, mmap, open) = expected_hooks(kernel, &skipped);
    let proof = expected_proof_hook(kernel, &skipped);
    for (purpose, hook) in [
        ("credential-read", read),
        ("credential-read", mmap),
        ("credential-open", open),
        ("proof", proof),
    ] {
        let Some(hook) = hook else { continue };
        let wanted = format!("{purpose}={hook}");
        checks.push((
            format!("uses {wanted}"),
            check(hooks.contains(&wanted), || format!("hooks were {hooks:?}")),
        ));
    }

    // A record for one access, described for the failure message.
    let access = |pred: &dyn Fn(&Value) -> bool| find("credential_access", pred);
    // The kernel skips a program already running on its CPU (one preempted inside it), and
    // counts it; keytrail logs the count per hook. A held read not seen is excused only by as
    // many counted misses of the hook that should have seen it: then the loss was visible,
    // which is what keytrail can promise there.
    let statistics = statistics(log);
    let missed_by = |hooks: &[String]| -> u64 {
        statistics
            .iter()
            .filter(|(names, ..)| hooks.iter().any(|h| names.contains(h.as_str())))
            .map(|(.., missed)| missed)
            .sum()
    };
    // The hooks that see each kind of held read (an mmap is seen by a fault or fault-around).
    let hooks_for = |kind: &str| -> Vec<String> {
        let by = if kind == "mmap" { mmap } else { read };
        by.map(|h| vec![h.to_owned(), h.replace("fault", "map_pages")])
            .unwrap_or_default()
    };
    let unseen = |kind: &str| {
        HELD_READS
            .iter()
            .filter(|(method, hook)| {
                *hook == kind
                    && access(&|r| argv(r, 1) == "hold" && argv(r, 2) == *method).is_none()
            })
            .count() as u64
    };
    let excused = |kind: &str| {
        let (unseen, missed) = (unseen(kind), missed_by(&hooks_for(kind)));
        (unseen > 0 && unseen <= missed).then_some(missed)
    };
    for (method, hook) in HELD_READS {
        let seen = access(&|r| argv(r, 1) == "hold" && argv(r, 2) == *method);
        let by = if *hook == "mmap" { mmap } else { read };
        let (name, result) = match by {
            Some(by) if seen.is_none() && excused(hook).is_some() => (
                format!(
                    "a held descriptor read by {method} was not seen, and the kernel counted \
                     {} missed runs of {by}",
                    excused(hook).unwrap_or_default()
                ),
                Ok(()),
            ),
            Some(by) => (
                format!(
                    "a held descriptor read by {method} is a credential_access (hook {hook}, by {by})"
                ),
                check(
                    seen.is_some_and(|r| {
                        r["hook"] == *hook && r["credential"]["path"] == PAGE_CACHE_CREDENTIAL
                    }),
                    || format!("record: {seen:?}"),
                ),
            ),
            // No read-side hook on this kernel in this pass: the read cannot be seen, and
            // nothing may claim it was.
            None => (
                format!("a held descriptor read by {method} is not seen: no read hook"),
                check(seen.is_none(), || format!("record: {seen:?}")),
            ),
        };
        checks.push((name, result));
    }
    for (what, path_arg, pid_marker) in [
        (
            "through a bind mount",
            "/mnt/aws/credentials",
            "KT-PID-BIND ",
        ),
        (
            "through /proc/1/root",
            "/proc/1/root/root/.aws/credentials",
            "KT-PID-PROCROOT ",
        ),
    ] {
        // By the pid the guest said, or by argv: an open handled before its exec carries the
        // shell's argv (the rings are drained apart), which is not what this claim is about.
        let pid: Option<u64> = marker(text, pid_marker).and_then(|p| p.parse().ok());
        let seen = access(&|r| {
            (pid.is_some() && r["process"]["pid"].as_u64() == pid)
                || (argv(r, 0) == "cat" && argv(r, 1) == path_arg)
        });
        checks.push((
            format!("cat {what} is an open of {PAGE_CACHE_CREDENTIAL}"),
            check(
                seen.is_some_and(|r| {
                    r["hook"] == "open" && r["credential"]["path"] == PAGE_CACHE_CREDENTIAL
                }),
                || format!("record: {seen:?}"),
            ),
        ));
    }
    let netrc = access(&|r| argv(r, 0) == "cat" && argv(r, 1) == TMPFS_CREDENTIAL);
    checks.push((
        format!("cat {TMPFS_CREDENTIAL} (tmpfs) is an open"),
        check(netrc.is_some_and(|r| r["hook"] == "open"), || {
            format!("record: {netrc:?}")
        }),
    ));
    // By its port, not nc's argv: under emulation the kernel's read of a new program's argv
    // fails now and then (its page not faulted in yet), and the process keeps its parent's.
    checks.push((
        "a shell's read then nc's connect is a credential_use".into(),
        check(
            find("credential_use", &|r| r["endpoint"]["port"] == 9000).is_some(),
            summary,
        ),
    ));
    let over_tls = find("credential_use", &|r| {
        argv(r, 0) == "curl" && r["endpoint"]["port"] == 9445
    });
    if enforce {
        let mode = ready.map(|r| r["tls_writes"].clone());
        checks.push((
            "TLS writes are read from credential holders only".into(),
            check(mode.as_ref().is_some_and(|m| m == "holders"), || {
                format!("ready.tls_writes: {mode:?}; {}", summary())
            }),
        ));
        checks.extend(read_denial_checks(text, kernel, &records, ready));
        checks.push(context_check(text, kernel, &records, ready));
    }
    let path = if enforce { "/holders" } else { "/proof" };
    checks.push(match proof {
        Some(hook) if enforce => (
            format!(
                "curl, started by a shell after its read, inherits the shell's uprobes and \
                 proves its use ({hook})"
            ),
            check(
                over_tls.is_some_and(|r| r["proof"] == "sent" && r["request"]["path"] == path),
                || format!("record: {over_tls:?}; {}", summary()),
            ),
        ),
        Some(hook) => (
            format!("curl's request over TLS proves its use (uprobe on SSL_write, {hook})"),
            check(
                over_tls.is_some_and(|r| r["proof"] == "sent" && r["request"]["path"] == path),
                || format!("record: {over_tls:?}; {}", summary()),
            ),
        ),
        None => (
            "curl's use over TLS is inferred: no send hook in this pass".into(),
            check(over_tls.is_some_and(|r| r["proof"] == "inferred"), || {
                format!("record: {over_tls:?}")
            }),
        ),
    });
    let unrelated = find("credential_use", &|r| r["endpoint"]["port"] == 9001);
    checks.push((
        "nc in a shell that read nothing is no credential_use".into(),
        check(unrelated.is_none(), || format!("record: {unrelated:?}")),
    ));
    if name == "default" {
        for (host, source) in [("api.example.test", "dns"), ("tls.example.test", "tls_sni")] {
            let named = find("credential_use", &|r| {
                argv(r, 0) == "curl" && r["endpoint"]["host"] == host
            });
            checks.push((
                format!("curl's endpoint is named {host} by {source}"),
                check(
                    named.is_some_and(|r| r["endpoint"]["host_source"] == source),
                    || format!("record: {named:?}; {}", summary()),
                ),
            ));
        }
    }
    checks.push((
        "the secret is printed nowhere".into(),
        check(!text.contains(token), || {
            "the token appears in keytrail's output".into()
        }),
    ));
    Pass {
        name: name.to_owned(),
        hooks,
        checks,
        statistics,
        loop_time: text
            .lines()
            .find(|l| l.contains("opens and reads of"))
            .and_then(|l| l.rsplit(", ").next())
            .map(|t| t.trim().trim_end_matches(" each").to_owned()),
    }
}

/// The `enforce` pass's contexts: the AWS key belongs to context kt-a. In kt-b, where BPF LSM
/// runs, busybox's read of it is refused (EACCES) and reported as a denied `cross-context-reuse`;
/// elsewhere it is read, and `nc` after it is refused (EPERM). In kt-a it is read and `nc`
/// connects. A kernel whose verifier refuses the exec programs that know contexts must say so
/// in `ready`, and refuse nothing.
fn context_check(
    text: &str,
    kernel: &Kernel,
    records: &[Value],
    ready: Option<&Value>,
) -> (String, Result<(), String>) {
    let contexts = ready.map(|r| r["enforcement"]["contexts"].clone());
    let (read_other, read_owner) = (
        marker(text, "KT-CTX-READ-kt-b "),
        marker(text, "KT-CTX-READ-kt-a "),
    );
    let other = marker(text, "KT-CTX-kt-b ");
    let owner = marker(text, "KT-CTX-kt-a ");
    let status = contexts.as_ref().and_then(|c| c.as_str()).unwrap_or("");
    let refused_read = records.iter().find(|r| {
        r["type"] == "finding"
            && r["rule"] == "cross-context-reuse"
            && r["action"] == "denied"
            && r["credential"]["path"] == "/root/.aws/credentials"
            && r["endpoint"].is_null()
    });
    let detail = || {
        format!(
            "KT-CTX-READ-kt-b {read_other:?}, KT-CTX-kt-b {other:?}; KT-CTX-READ-kt-a \
             {read_owner:?}, KT-CTX-kt-a {owner:?}; ready.enforcement.contexts {contexts:?}; \
             refused read finding {refused_read:?}"
        )
    };
    let owner_goes = read_owner == Some("read") && owner == Some("connected");
    if status == "deny" && kernel.bpf_lsm {
        (
            "a credential owned by context kt-a: its read in kt-b is refused (EACCES) and \
             reported denied, in kt-a it is read and goes out"
                .into(),
            check(
                read_other == Some("refused")
                    && other == Some("connected")
                    && refused_read.is_some()
                    && owner_goes,
                detail,
            ),
        )
    } else if status == "deny" {
        (
            "a credential owned by context kt-a: a connect after its read in kt-b is refused, \
             in kt-a it goes out"
                .into(),
            check(
                read_other == Some("read") && other == Some("refused") && owner_goes,
                detail,
            ),
        )
    } else {
        (
            "where the kernel cannot know contexts, ready says why and nothing is refused".into(),
            check(
                status.starts_with("unavailable")
                    && read_other == Some("read")
                    && other == Some("connected")
                    && owner_goes,
                detail,
            ),
        )
    }
}

/// The `enforce` pass's read denial: where BPF LSM runs, busybox's `cat` of the SSH key is
/// refused (EACCES), reported as a refused access and an `unexpected-reader` finding that says
/// so, and kt-vm-helper, its allowed reader, reads it; elsewhere `ready` says read denial is
/// unavailable and nothing is refused.
fn read_denial_checks(
    text: &str,
    kernel: &Kernel,
    records: &[Value],
    ready: Option<&Value>,
) -> Vec<(String, Result<(), String>)> {
    const KEY: &str = "/root/.ssh/id_ed25519";
    let reads = ready.map(|r| r["enforcement"]["reads"].clone());
    let cat = marker(text, "KT-SSH-CAT ");
    let helper = marker(text, "KT-SSH-HELPER ");
    let (mv, ln) = (marker(text, "KT-SSH-MV "), marker(text, "KT-SSH-LN "));
    let refused = records.iter().find(|r| {
        r["type"] == "credential_access"
            && r["credential"]["path"] == KEY
            && r["enforcement"] == "denied"
            && argv(r, 0) == "cat"
    });
    let finding = records.iter().find(|r| {
        r["type"] == "finding"
            && r["rule"] == "unexpected-reader"
            && r["action"] == "denied"
            && r["credential"]["path"] == KEY
    });
    let mut checks = vec![(
        "kt-vm-helper, the SSH key's allowed reader, reads it".to_owned(),
        check(helper == Some("read"), || {
            format!("KT-SSH-HELPER {helper:?}")
        }),
    )];
    if kernel.bpf_lsm {
        checks.push((
            "cat of the SSH key is refused at open (lsm/file_open, EACCES)".into(),
            check(
                cat == Some("refused") && reads.as_ref().is_some_and(|r| r == "deny"),
                || format!("KT-SSH-CAT {cat:?}; ready.enforcement.reads {reads:?}"),
            ),
        ));
        checks.push((
            "mv and ln of the SSH key out of the catalog's paths are refused (lsm/inode_rename, \
             lsm/inode_link)"
                .into(),
            check(mv == Some("refused") && ln == Some("refused"), || {
                format!("KT-SSH-MV {mv:?}; KT-SSH-LN {ln:?}")
            }),
        ));
        let moved = records.iter().find(|r| {
            r["type"] == "credential_access"
                && r["credential"]["path"] == KEY
                && r["hook"] == "move"
                && r["enforcement"] == "denied"
        });
        checks.push((
            "the refused move is reported (hook move, enforcement denied)".into(),
            check(moved.is_some(), || {
                format!("no such access; {} records", records.len())
            }),
        ));
        checks.push((
            "the refused open is a denied access and a denied unexpected-reader finding".into(),
            check(refused.is_some() && finding.is_some(), || {
                format!("access {refused:?}; finding {finding:?}")
            }),
        ));
    } else {
        checks.push((
            "without BPF LSM, read denial is reported unavailable and cat reads the key".into(),
            check(
                cat == Some("read")
                    && mv == Some("moved")
                    && reads
                        .as_ref()
                        .and_then(|r| r.as_str())
                        .is_some_and(|r| r.starts_with("unavailable")),
                || format!("KT-SSH-CAT {cat:?}; ready.enforcement.reads {reads:?}"),
            ),
        ));
    }
    checks
}

/// "kernel statistics: HOOKS ran N times, M ns each on average, missed K" lines of keytrail's
/// log.
fn statistics(log: &str) -> Vec<(String, u64, u64, u64)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split("kernel statistics: ").nth(1)?;
            let (hooks, rest) = rest.split_once(" ran ")?;
            let (runs, rest) = rest.split_once(" times, ")?;
            let (mean, rest) = rest.split_once(" ns")?;
            let missed = rest
                .rsplit_once("missed ")
                .and_then(|(_, m)| m.trim().parse().ok());
            Some((
                hooks.to_owned(),
                runs.parse().ok()?,
                mean.parse().ok()?,
                missed.unwrap_or(0),
            ))
        })
        .collect()
}

/// Whether a release such as "6.12.117+deb12-amd64" is at least `major.minor`.
fn at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}

#[cfg(test)]
mod tests;
