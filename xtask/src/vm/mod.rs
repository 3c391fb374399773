//! `cargo xtask vm-test`: keytrail on real Debian kernels, each booted under qemu with software
//! emulation (TCG: /dev/kvm on the development machines is PVM-based, and stock kernels crash or
//! hang under it).
//! Each VM runs the scenarios in xtask/vm/init.sh; the host judges its console (check.rs).
mod check;
mod initramfs;
mod kernels;
mod lock;

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};
use clap::Args;

use crate::build;

#[derive(Args, Default)]
pub struct Options {
    /// Only these kernel series (repeatable): 5.10, 6.1, 6.12, newest. Default: all.
    #[arg(long = "kernel", value_name = "SERIES")]
    kernels: Vec<String>,
    /// Seconds one VM may run before it counts as hung (default 600).
    #[arg(long)]
    timeout: Option<u32>,
    /// Pin the newest kernel of each series in Debian's archives (rewrites xtask/vm/kernels.lock).
    #[arg(long)]
    refresh: bool,
}

/// A fixed, recognisable value: the VM's /init writes it into /root/.netrc, and the check
/// asserts it never shows up in keytrail's output.
const TOKEN: &str = "kt-vm-token-9c41e7a2";
/// LSMs to boot with so BPF LSM is allowed (Debian leaves `bpf` out of the default list).
const LSM_WITH_BPF: &str = "lsm=lockdown,capability,landlock,yama,apparmor,bpf";
/// The series booted without BPF LSM, to prove the fallback path.
const FALLBACK_SERIES: &str = "5.10";

pub fn run(opts: Options) -> anyhow::Result<()> {
    let known: Vec<&str> = kernels::SERIES.iter().map(|s| s.name).collect();
    if let Some(unknown) = opts.kernels.iter().find(|k| !known.contains(&k.as_str())) {
        bail!(
            "unknown kernel series {unknown:?}; known: {}",
            known.join(", ")
        );
    }
    let wanted: Vec<&kernels::Series> = kernels::SERIES
        .iter()
        .filter(|s| opts.kernels.is_empty() || opts.kernels.iter().any(|k| k == s.name))
        .collect();
    if build::which("qemu-system-x86_64").is_none() {
        bail!("qemu-system-x86_64 is missing: run ./xtask/setup.sh (it installs qemu)");
    }
    let dir = build::workspace_root().join("target/vm");
    fs::create_dir_all(&dir)?;
    let keytrail = build::keytrail()?;
    let kernels = kernels::fetch(&wanted, &dir, opts.refresh)?;
    let image = initramfs::build(&keytrail, &dir)?;

    let mut failed = Vec::new();
    let mut report = Vec::new();
    for kernel in &kernels {
        let lsm = kernel.series != FALLBACK_SERIES;
        eprintln!(
            "xtask vm-test: booting {} ({}, {}; software emulation, a minute or two)",
            kernel.release,
            kernel.series,
            if lsm {
                "BPF LSM on"
            } else {
                "BPF LSM off: fallback hooks"
            }
        );
        let started = Instant::now();
        let serial = boot(&kernel.vmlinuz, &image, lsm, opts.timeout.unwrap_or(600))?;
        let log = dir.join(format!("{}.log", kernel.release));
        fs::write(&log, &serial)?;
        let outcome = check::judge(&serial, TOKEN, lsm);
        let seconds = started.elapsed().as_secs();
        println!(
            "{:<8} {:<26} {} passed, {} failed, {seconds} s",
            kernel.series,
            outcome.kernel.as_deref().unwrap_or("(no kernel line)"),
            outcome.passed(),
            outcome.failed(),
        );
        println!("         hooks: {}", outcome.hooks.join(", "));
        for (name, result) in &outcome.checks {
            match result {
                Ok(()) => println!("         ok    {name}"),
                Err(why) => println!("         FAIL  {name}: {why}"),
            }
        }
        if outcome.failed() > 0 {
            failed.push(format!("{} (console: {})", kernel.release, log.display()));
        }
        report.push(serde_json::json!({
            "series": kernel.series,
            "release": kernel.release,
            "bpf_lsm": lsm,
            "hooks": outcome.hooks,
            "passed": outcome.passed(),
            "failed": outcome.failed(),
            "seconds": seconds,
        }));
    }
    fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    if !failed.is_empty() {
        bail!("kernels with failures: {}", failed.join("; "));
    }
    println!("all {} kernels passed", kernels.len());
    Ok(())
}

/// Boots one kernel and returns everything it wrote to its serial console.
fn boot(vmlinuz: &Path, initramfs: &Path, lsm: bool, timeout: u32) -> anyhow::Result<String> {
    let mut append = format!("console=ttyS0 panic=-1 quiet KT_TOKEN={TOKEN}");
    if lsm {
        append.push(' ');
        append.push_str(LSM_WITH_BPF);
    }
    let out = Command::new("timeout")
        .args([
            "--kill-after=10",
            &timeout.to_string(),
            "qemu-system-x86_64",
        ])
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1G", "-smp", "2"])
        .args([
            "-display",
            "none",
            "-no-reboot",
            "-monitor",
            "none",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .output()
        .context("running qemu")?;
    let mut serial = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() == Some(124) {
        serial.push_str(&format!("\n[xtask: the VM was killed after {timeout} s]\n"));
    }
    Ok(serial)
}
