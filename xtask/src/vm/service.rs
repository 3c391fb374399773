//! `cargo xtask vm-test --service`: the Debian package under systemd, on a booted machine.
//!
//! A minimal Debian 12 userland with systemd as init (mmdebstrap, cached in target/vm) becomes
//! the VM's initramfs, with the package, a credential and a check that runs once after boot
//! (xtask/vm/service-check.sh): install the package with dpkg, `systemctl enable --now`, read
//! the credential, `systemctl reload`, read again, `systemctl stop`. The guest only acts and
//! prints `KT-SVC` lines; `judge` decides.
//!
//! The root file system is the initramfs itself (a tmpfs), so the kernel needs no block or
//! file-system module: the matrix's bare kernel images serve.
use std::{
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

use super::{check::Checks, kernels};

/// The userland: Debian 12, as the package's `Depends` targets.
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// What the userland holds beyond minbase: systemd as init, and procps (the unit's reload runs
/// its /bin/kill; every Debian install but minbase has it). The package's dependencies must be
/// here already: the guest installs it with dpkg, offline.
const PACKAGES: &str = "systemd,systemd-sysv,procps";
/// Documentation and translations, left out of the image to keep it small.
const EXCLUDED: &[&str] = &[
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
];
const CHECK: &str = include_str!("../../vm/service-check.sh");
const CHECK_UNIT: &str = "\
[Unit]
Description=keytrail's service check (xtask vm-test --service)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/kt-service-check
";
/// CAP_DAC_READ_SEARCH (2), CAP_SYS_PTRACE (19), CAP_PERFMON (38), CAP_BPF (39): what keytrail
/// keeps of the unit's bounding set once its probes are attached.
const KEPT_CAPABILITIES: u64 = 1 << 2 | 1 << 19 | 1 << 38 | 1 << 39;
/// How long the boot, the check and the power-off may take under emulation (about 30 s here)
/// before the VM counts as hung.
const TIMEOUT_S: u32 = 600;

/// Boots `kernel` with the userland and `deb`, and judges what the check printed.
pub fn run(kernel: &kernels::Kernel, deb: &Path, token: &str, dir: &Path) -> anyhow::Result<()> {
    if super::super::build::which("mmdebstrap").is_none() {
        bail!("mmdebstrap is missing: run ./xtask/setup.sh (it installs mmdebstrap)");
    }
    let root = userland(dir)?;
    let image = image(&root, deb, token, dir)?;
    eprintln!(
        "xtask vm-test --service: booting {} with systemd as init (software emulation, about half a minute)",
        kernel.release
    );
    let started = Instant::now();
    let serial = super::boot(
        &kernel.vmlinuz,
        &image,
        &super::BootOptions {
            lsm: false,
            memory: "2G",
            init: Some("/lib/systemd/systemd"),
            timeout: TIMEOUT_S,
        },
    )?;
    let log = dir.join("service.log");
    fs::write(&log, &serial)?;
    let checks = judge(&serial, token);
    println!(
        "service  {:<26} {} passed, {} failed, {} s",
        kernel.release,
        checks.iter().filter(|(_, r)| r.is_ok()).count(),
        checks.iter().filter(|(_, r)| r.is_err()).count(),
        started.elapsed().as_secs()
    );
    super::print_checks(&checks, "");
    if checks.iter().any(|(_, r)| r.is_err()) {
        bail!("the service check failed (console: {})", log.display());
    }
    Ok(())
}

/// The userland at `dir/service-root`, made once and reused while `PACKAGES` is unchanged.
fn userland(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join("service-root");
    let stamp = dir.join("service-root.packages");
    let wanted = format!("{SUITE} {PACKAGES}");
    if root.join("lib/systemd/systemd").exists()
        && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted)
    {
        return Ok(root);
    }
    let _ = fs::remove_dir_all(&root);
    eprintln!(
        "xtask vm-test --service: making a Debian {SUITE} userland with mmdebstrap (about a minute)"
    );
    let mut c = Command::new("mmdebstrap");
    c.args(["--quiet", "--mode=root", "--variant=minbase"])
        .arg(format!("--include={PACKAGES}"));
    for exclusion in EXCLUDED {
        c.arg(format!("--dpkgopt={exclusion}"));
    }
    // apt's lists are 40 MB the guest never uses.
    c.arg("--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*")
        .arg(SUITE)
        .arg(&root)
        .arg(MIRROR);
    let status = c.status().context("running mmdebstrap")?;
    if !status.success() {
        bail!(
            "mmdebstrap failed to make the userland at {}",
            root.display()
        );
    }
    fs::write(&stamp, wanted)?;
    Ok(root)
}

/// Puts the package, the credential and the check into the userland, and packs it as
/// `dir/service.cpio.gz`.
fn image(root: &Path, deb: &Path, token: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let put = |relative: &str, bytes: &[u8], mode: u32| -> anyhow::Result<()> {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().expect("a file in a directory"))?;
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    put("kt/keytrail.deb", &fs::read(deb)?, 0o644)?;
    put(
        "root/.aws/credentials",
        format!(
            "[default]\naws_access_key_id = AKIAKTVMTEST00000000\naws_secret_access_key = {token}\n"
        )
        .as_bytes(),
        0o600,
    )?;
    put("usr/local/sbin/kt-service-check", CHECK.as_bytes(), 0o755)?;
    put(
        "etc/systemd/system/kt-service-check.service",
        CHECK_UNIT.as_bytes(),
        0o644,
    )?;
    put("etc/hostname", b"keytrail-vm\n", 0o644)?;
    // Enabled as systemctl would: a link in the wants of the target it runs after. The console
    // is the check's alone: no login prompt on it.
    let links: &[(&str, &str)] = &[
        (
            "etc/systemd/system/multi-user.target.wants/kt-service-check.service",
            "/etc/systemd/system/kt-service-check.service",
        ),
        ("etc/systemd/system/serial-getty@ttyS0.service", "/dev/null"),
        ("etc/systemd/system/getty@tty1.service", "/dev/null"),
    ];
    for (link, target) in links {
        let path = root.join(link);
        fs::create_dir_all(path.parent().expect("a link in a directory"))?;
        let _ = fs::remove_file(&path);
        symlink(target, &path)?;
    }
    let image = dir.join("service.cpio.gz");
    let script = format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        root.display(),
        image.display()
    );
    if !Command::new("sh").args(["-c", &script]).status()?.success() {
        bail!("packing the service image failed");
    }
    Ok(image)
}

/// What the check's lines on `serial` show, one result per claim.
pub fn judge(serial: &str, token: &str) -> Checks {
    let said = |line: &str| {
        serial
            .lines()
            .any(|l| l.trim_end().strip_prefix("KT-SVC ") == Some(line))
    };
    let value = |key: &str| -> Option<&str> {
        serial.lines().find_map(|l| {
            l.trim_end()
                .strip_prefix("KT-SVC ")?
                .strip_prefix(key)?
                .strip_prefix(' ')
        })
    };
    let claim = |ok: bool, why: &str| if ok { Ok(()) } else { Err(why.to_owned()) };
    let records: Vec<&str> = serial
        .lines()
        .filter_map(|l| l.strip_prefix("KT-SVC-RECORD "))
        .collect();
    let journal: String = serial
        .lines()
        .filter_map(|l| l.strip_prefix("KT-SVC-JOURNAL "))
        .collect::<Vec<_>>()
        .join("\n");
    // Reads of the credential by each phase's reader (a copy of cat named for the phase).
    let read_by = |reader: &str| {
        records.iter().any(|r| {
            serde_json::from_str::<serde_json::Value>(r).is_ok_and(|v| {
                v["type"] == "credential_access"
                    && v["credential"]["path"] == "/root/.aws/credentials"
                    && v["process"]["comm"] == reader
            })
        })
    };
    let capabilities = |set: &str| value(set).and_then(|hex| u64::from_str_radix(hex, 16).ok());
    vec![
        (
            "the guest ran the check under systemd".into(),
            claim(value("systemd").is_some() && said("done"), "no `KT-SVC done` on the console"),
        ),
        (
            "dpkg installs the package".into(),
            claim(value("installed").is_some(), "dpkg -i failed (KT-SVC-DPKG lines)"),
        ),
        (
            "systemctl enable --now brings keytrail up (Type=notify: READY)".into(),
            claim(
                value("started").is_some()
                    && value("state") == Some("active")
                    && value("type") == Some("notify"),
                "the unit did not become active (KT-SVC-SYSTEMCTL and KT-SVC-JOURNAL lines)",
            ),
        ),
        (
            "once attached, keytrail keeps CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE only".into(),
            claim(
                ["CapBnd", "CapPrm", "CapEff"]
                    .iter()
                    .all(|set| capabilities(set) == Some(KEPT_CAPABILITIES)),
                "its bounding, permitted or effective set (KT-SVC CapBnd, CapPrm, CapEff) is not those four",
            ),
        ),
        (
            "a credential read is recorded in the records file".into(),
            claim(said("read-recorded") && read_by("kt-first"), "no credential_access of /root/.aws/credentials by kt-first"),
        ),
        (
            "systemctl reload re-reads the policy in the same process".into(),
            claim(
                said("reloaded")
                    && journal.contains("SIGHUP: policy reloaded from /etc/keytrail/policy.toml")
                    && value("state-after-reload") == Some("active")
                    && said("same-process"),
                "the reload failed or restarted keytrail",
            ),
        ),
        (
            "reads are still recorded after the reload".into(),
            claim(said("read-recorded-after-reload") && read_by("kt-reloaded"), "no credential_access by kt-reloaded"),
        ),
        (
            "a broken policy on reload is refused and the running one stays".into(),
            claim(
                value("state-after-broken-reload") == Some("active")
                    && said("same-process-after-broken-reload")
                    && said("read-recorded-after-broken-reload")
                    && read_by("kt-refused")
                    && journal.contains("SIGHUP: policy not reloaded, the running one stays"),
                "keytrail did not refuse the broken policy and go on",
            ),
        ),
        (
            "systemctl stop ends it cleanly (Result=success, exit 0)".into(),
            claim(
                value("result") == Some("success") && value("exit-status") == Some("0"),
                "the stop was not clean",
            ),
        ),
        (
            "the secret is in no record and no journal line".into(),
            claim(!serial.contains(token), "the token appears on the console"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "kt-test-token";

    /// A console as a good run prints it (its records cut to what `judge` reads).
    fn good_console() -> String {
        let access = |comm: &str| {
            format!(
                r#"{{"type":"credential_access","credential":{{"path":"/root/.aws/credentials"}},"process":{{"comm":"{comm}"}}}}"#
            )
        };
        let mut lines = vec![
            "KT-SVC systemd systemd 252".to_owned(),
            "KT-SVC installed 0.1.0".into(),
            "KT-SVC started 5s".into(),
            "KT-SVC state active".into(),
            "KT-SVC type notify".into(),
            "KT-SVC CapBnd 000000c000080004".into(),
            "KT-SVC CapPrm 000000c000080004".into(),
            "KT-SVC CapEff 000000c000080004".into(),
            "KT-SVC read-recorded".into(),
            "KT-SVC reloaded".into(),
            "KT-SVC state-after-reload active".into(),
            "KT-SVC same-process".into(),
            "KT-SVC read-recorded-after-reload".into(),
            "KT-SVC state-after-broken-reload active".into(),
            "KT-SVC same-process-after-broken-reload".into(),
            "KT-SVC read-recorded-after-broken-reload".into(),
            "KT-SVC result success".into(),
            "KT-SVC exit-status 0".into(),
        ];
        lines.extend(
            ["kt-first", "kt-reloaded", "kt-refused"]
                .map(|c| format!("KT-SVC-RECORD {}", access(c))),
        );
        lines.push("KT-SVC-JOURNAL [..] SIGHUP: policy reloaded from /etc/keytrail/policy.toml; watching 1 credentials".into());
        lines.push(
            "KT-SVC-JOURNAL [..] SIGHUP: policy not reloaded, the running one stays: ...".into(),
        );
        lines.push("KT-SVC done".into());
        lines.join("\n")
    }

    fn failures(console: &str) -> Vec<String> {
        judge(console, TOKEN)
            .into_iter()
            .filter(|(_, r)| r.is_err())
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn a_good_run_keeps_every_claim() {
        assert_eq!(failures(&good_console()), Vec::<String>::new());
    }

    #[test]
    fn a_leaked_secret_breaks_the_claim() {
        let console = good_console() + "\nKT-SVC-JOURNAL token " + TOKEN;
        assert_eq!(
            failures(&console),
            ["the secret is in no record and no journal line"]
        );
    }

    #[test]
    fn full_capabilities_break_the_claim() {
        let console = good_console().replace("CapEff 000000c000080004", "CapEff 000001ffffffffff");
        assert_eq!(failures(&console).len(), 1);
    }

    #[test]
    fn a_phase_without_its_own_read_breaks_its_claim() {
        let console = good_console().replace(r#""comm":"kt-reloaded""#, r#""comm":"kt-first""#);
        assert_eq!(
            failures(&console),
            ["reads are still recorded after the reload"]
        );
    }

    #[test]
    fn a_silent_guest_keeps_no_claim_but_the_secret() {
        assert_eq!(failures("").len(), judge("", TOKEN).len() - 1);
    }
}
