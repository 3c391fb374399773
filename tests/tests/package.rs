//! The Debian package `cargo xtask dist` builds (`cargo xtask test` passes its path in
//! KEYTRAIL_DEB): its metadata and files; its systemd unit, checked by `systemd-analyze verify`;
//! and the packaged binary run as the unit runs it: within the unit's capability bounding set,
//! on the packaged policy, writing to a file, with a service manager's notify socket, which
//! must hear READY once it watches, RELOADING and READY around a `systemctl reload` (SIGHUP),
//! and STOPPING at the end. What it does not prove: systemd itself starting the unit (that
//! needs a machine booted with systemd; see the README).
use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use keytrail_tests::*;

const UNIT: &str = "lib/systemd/system/keytrail.service";

/// The package, or None (said loudly) when the test runs outside `cargo xtask test`.
fn package() -> Option<PathBuf> {
    let deb = std::env::var_os("KEYTRAIL_DEB").map(PathBuf::from);
    if deb.is_none() {
        eprintln!(
            "SKIPPED: KEYTRAIL_DEB is not set; `cargo xtask test` builds the package and sets it"
        );
    }
    deb
}

/// The package's files under a fresh directory.
fn extract(deb: &Path, tag: &str) -> PathBuf {
    let root = scratch_dir(tag);
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    root
}

fn field(deb: &Path, name: &str) -> String {
    let out = run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_package_holds_the_binary_unit_policy_man_page_and_completions() {
    let Some(deb) = package() else { return };
    assert_eq!(field(&deb, "Package"), "keytrail");
    assert_eq!(field(&deb, "Architecture"), "amd64");
    let root = extract(&deb, "pkg-files");
    for path in [
        "usr/bin/keytrail",
        UNIT,
        "etc/keytrail/policy.toml",
        "etc/logrotate.d/keytrail",
        "usr/share/man/man1/keytrail.1.gz",
        "usr/share/bash-completion/completions/keytrail",
        "usr/share/zsh/vendor-completions/_keytrail",
        "usr/share/fish/vendor_completions.d/keytrail.fish",
    ] {
        assert!(root.join(path).is_file(), "the package has /{path}");
    }
    // The policy is a conffile (an operator's edits survive an upgrade), and it is the
    // embedded default, which checks out.
    let control = scratch_dir("pkg-control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles.lines().any(|l| l == "/etc/keytrail/policy.toml"),
        "{conffiles}"
    );
    let policy = root.join("etc/keytrail/policy.toml");
    let default = run(Command::new(keytrail_bin()).args(["policy", "--default"])).stdout;
    assert_eq!(std::fs::read(&policy).unwrap(), default);
    run(Command::new(root.join("usr/bin/keytrail"))
        .arg("check-config")
        .arg(&policy));
    // The man page is roff for keytrail, the completions know the subcommands.
    let man = run(Command::new("gzip")
        .arg("-dc")
        .arg(root.join("usr/share/man/man1/keytrail.1.gz")))
    .stdout;
    assert!(String::from_utf8_lossy(&man).contains(".TH keytrail 1"));
    let bash = std::fs::read_to_string(root.join("usr/share/bash-completion/completions/keytrail"))
        .unwrap();
    assert!(bash.contains("check-config") && bash.contains("replay"));
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Some(deb) = package() else { return };
    let root = extract(&deb, "pkg-verify");
    // The unit's dependencies (sysinit.target, ...) from the host, beside the package's files.
    for entry in std::fs::read_dir("/lib/systemd/system").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "target") {
            let _ = std::fs::copy(
                &path,
                root.join("lib/systemd/system")
                    .join(path.file_name().unwrap()),
            );
        }
    }
    // The programs the unit runs that the system, not the package, provides (/bin/kill).
    let unit = std::fs::read_to_string(root.join(UNIT)).unwrap();
    for program in unit
        .lines()
        .filter_map(|l| l.split_once('=').filter(|(k, _)| k.starts_with("Exec")))
        .filter_map(|(_, command)| command.split_whitespace().next())
    {
        let inside = root.join(program.trim_start_matches('/'));
        if !inside.exists() {
            std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
            std::fs::copy(program, &inside).unwrap_or_else(|e| panic!("{program}: {e}"));
        }
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .arg("keytrail.service")
        .output()
        .expect("systemd-analyze (Debian's systemd package; ./xtask/setup.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

/// The unit's `CapabilityBoundingSet=` as setpriv's `--bounding-set` takes it.
fn bounding_set(unit: &str) -> String {
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets its capabilities")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect();
    format!("-all,{}", caps.join(","))
}

/// The next notify datagram within `WAIT`, or None.
fn heard(manager: &UnixDatagram) -> Option<String> {
    manager.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 512];
    let n = manager.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn the_packaged_binary_runs_as_its_unit_runs_it() {
    require_root();
    let Some(deb) = package() else { return };
    let root = extract(&deb, "pkg-run");
    let unit = std::fs::read_to_string(root.join(UNIT)).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    let user = TestUser::create("pkg");
    let key = user.write(
        ".git-credentials",
        "https://kt:kt-pkg-token-51@github.com\n",
    );

    let dir = scratch_dir("pkg-notify");
    let socket = dir.join("notify");
    let manager = UnixDatagram::bind(&socket).unwrap();
    let records = dir.join("records.json");
    let mut keytrail = Command::new("setpriv")
        .arg(format!("--bounding-set={}", bounding_set(&unit)))
        .args(["--inh-caps=-all", "--"])
        .arg(root.join("usr/bin/keytrail"))
        .args(["run", "--format", "json", "--config"])
        .arg(root.join("etc/keytrail/policy.toml"))
        .arg("--output")
        .arg(&records)
        .env("NOTIFY_SOCKET", &socket)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux)");
    let ready = heard(&manager);
    assert!(
        ready.as_deref().is_some_and(|s| s.starts_with("READY=1")),
        "READY once it watches: {ready:?}"
    );
    let reader = run_pid(Command::new("cat").arg(&key));
    let seen = || {
        std::fs::read_to_string(&records)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                serde_json::from_str::<serde_json::Value>(l).is_ok_and(|r| {
                    r["type"] == "credential_access" && r["process"]["pid"] == reader
                })
            })
    };
    let started = Instant::now();
    while !seen() && started.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen(), "the read is in the records file");

    // SAFETY: signalling our own child (setpriv execs keytrail in its place).
    unsafe { libc::kill(keytrail.id() as i32, libc::SIGHUP) };
    let reloading = heard(&manager);
    assert!(
        reloading
            .as_deref()
            .is_some_and(|s| s.starts_with("RELOADING=1\nMONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let again = heard(&manager);
    assert!(
        again.as_deref().is_some_and(|s| s.starts_with("READY=1")),
        "{again:?}"
    );

    // SAFETY: as above.
    unsafe { libc::kill(keytrail.id() as i32, libc::SIGTERM) };
    let stopping = heard(&manager);
    assert_eq!(stopping.as_deref(), Some("STOPPING=1"));
    let status = keytrail.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut keytrail.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "a clean stop: {status:?}\n{stderr}");
    assert!(!stderr.contains("lacks CAP_"), "{stderr}");
    let text = std::fs::read_to_string(&records).unwrap();
    assert!(
        !text.contains("kt-pkg-token-51"),
        "the secret is printed nowhere"
    );
}
