//! `cargo xtask vm-test`: keytrail on real Debian kernels, each booted under qemu with software
//! emulation (TCG: /dev/kvm on the development machines is PVM-based, and stock kernels crash or
//! hang under it).
//! Each VM runs the scenarios in xtask/vm/init.sh; the host judges its console (check.rs).
mod check;
mod initramfs;
mod kernels;
mod lock;
mod service;

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
    /// Seconds one VM may run before it counts as hung (default 300).
    #[arg(long)]
    timeout: Option<u32>,
    /// Pin the newest kernel of each series in Debian's archives (rewrites xtask/vm/kernels.lock).
    #[arg(long)]
    refresh: bool,
    /// Instead of the matrix: boot a Debian userland with systemd as init on the 6.1 kernel,
    /// install the package and check the unit (start, a recorded read, reload, stop).
    #[arg(long, conflicts_with = "kernels")]
    service: bool,
}

/// A fixed, recognisable value: the image's credentials hold it, and the check asserts it never
/// shows up in keytrail's output. It is in no environment and not on the kernel command line,
/// so a use can only come from a read.
const TOKEN: &str = "kt-vm-token-9c41e7a2";
/// LSMs to boot with so BPF LSM is allowed, on kernels whose shipped list leaves `bpf` out
/// (Debian 11's 5.10).
const LSM_WITH_BPF: &str = "lsm=lockdown,capability,landlock,yama,apparmor,bpf";
/// One keytrail run per pass inside each VM, with these kinds of hook skipped, so that every
/// fallback in the probe table serves at least once on every kernel: the preferred hooks; the
/// classic filemap tracepoints; the fentry programs on the security functions; their kprobe
/// forms; the openat syscall tracepoints (with the read hooks of 6.11+ kept). And `enforce`:
/// the preferred hooks, with a policy that refuses an SSH key's opens by other programs than
/// its reader, and reads TLS writes from credential holders only.
const PASSES: &[&str] = &[
    "default",
    "enforce",
    "tp_btf",
    "tp_btf,tracepoint,lsm",
    "tp_btf,tracepoint,lsm,fentry",
    "lsm,fentry,kprobe",
];

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
    if opts.service {
        let series: Vec<&kernels::Series> =
            kernels::SERIES.iter().filter(|s| s.name == "6.1").collect();
        let kernel = kernels::fetch(&series, &dir, opts.refresh)?
            .pop()
            .context("the lock pins no 6.1 kernel")?;
        let deb = crate::dist::package(&keytrail)?;
        return service::run(&kernel, &deb, TOKEN, &dir);
    }
    let helper = build::vm_helper()?;
    let kernels = kernels::fetch(&wanted, &dir, opts.refresh)?;
    let image = initramfs::build(
        &initramfs::Contents {
            keytrail: &keytrail,
            helper: &helper,
            token: TOKEN,
            passes: PASSES,
        },
        &dir,
    )?;

    let mut failed = Vec::new();
    let mut report = Vec::new();
    for kernel in &kernels {
        // As the distribution ships it; then with BPF LSM if that left it out.
        let mut lsm = false;
        loop {
            let timeout = opts.timeout.unwrap_or(BOOT_TIMEOUT_S);
            let mut boot = boot_and_judge(kernel, &image, &dir, lsm, timeout)?;
            if boot.kernel.release.is_none() {
                // The guest never reached keytrail's init: under emulation a kernel now and then
                // stalls at boot (an RCU stall with no timer interrupt). That is qemu's, not a
                // result: boot once more.
                eprintln!(
                    "xtask vm-test: {} never reached init (an emulation stall, see {}); booting it again",
                    kernel.release,
                    boot_log(&dir, kernel, lsm).display()
                );
                boot = boot_and_judge(kernel, &image, &dir, lsm, timeout)?;
            }
            if boot.failed() > 0 {
                failed.push(format!(
                    "{}{} (console: {})",
                    kernel.release,
                    if lsm { " with BPF LSM" } else { "" },
                    boot_log(&dir, kernel, lsm).display()
                ));
            }
            report.push(report_entry(kernel, lsm, &boot));
            if lsm || boot.kernel.bpf_lsm || boot.kernel.release.is_none() {
                break;
            }
            lsm = true;
        }
    }
    fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    if !failed.is_empty() {
        bail!("kernels with failures: {}", failed.join("; "));
    }
    println!(
        "all {} boots of {} kernels passed",
        report.len(),
        kernels.len()
    );
    Ok(())
}

/// The service check alone (`vm-test --service`).
pub fn run_service() -> anyhow::Result<()> {
    run(Options {
        service: true,
        ..Options::default()
    })
}

/// How long one boot may take: a boot with its six passes takes 35-50 s under emulation here;
/// a guest that stalls is killed after this.
const BOOT_TIMEOUT_S: u32 = 300;

fn boot_log(dir: &Path, kernel: &kernels::Kernel, lsm: bool) -> std::path::PathBuf {
    let suffix = if lsm { "-lsm" } else { "" };
    dir.join(format!("{}{suffix}.log", kernel.release))
}

/// Boots `kernel` once, prints what each pass showed, and returns the judgement.
fn boot_and_judge(
    kernel: &kernels::Kernel,
    image: &Path,
    dir: &Path,
    lsm: bool,
    timeout: u32,
) -> anyhow::Result<check::Boot> {
    eprintln!(
        "xtask vm-test: booting {} ({}, {}; software emulation, {} passes, a few minutes)",
        kernel.release,
        kernel.series,
        if lsm {
            "with lsm=...,bpf"
        } else {
            "as shipped"
        },
        PASSES.len()
    );
    let started = Instant::now();
    let serial = boot(
        &kernel.vmlinuz,
        image,
        &BootOptions {
            lsm,
            memory: "1G",
            init: None,
            timeout,
        },
    )?;
    fs::write(boot_log(dir, kernel, lsm), &serial)?;
    let outcome = check::judge(&serial, TOKEN, PASSES);
    println!(
        "{:<8} {:<26} {}{} passed, {} failed, {} s",
        kernel.series,
        outcome
            .kernel
            .release
            .as_deref()
            .unwrap_or("(no kernel line)"),
        if outcome.kernel.bpf_lsm {
            "BPF LSM on; "
        } else {
            "BPF LSM off; "
        },
        outcome.passed(),
        outcome.failed(),
        started.elapsed().as_secs()
    );
    print_checks(&outcome.checks, "");
    for pass in &outcome.passes {
        println!(
            "  pass --skip-hooks {}: open+read+close loop {}",
            pass.name,
            pass.loop_time.as_deref().unwrap_or("?")
        );
        let credential_hooks: Vec<&String> = pass
            .hooks
            .iter()
            .filter(|h| h.starts_with("credential"))
            .collect();
        println!("    hooks: {credential_hooks:?}");
        for (hooks, runs, mean, missed) in pass.statistics.iter().filter(|s| s.1 > 0) {
            println!("    {hooks}: {runs} runs, {mean} ns each, {missed} missed");
        }
        print_checks(&pass.checks, "  ");
    }
    Ok(outcome)
}

fn print_checks(checks: &[(String, Result<(), String>)], indent: &str) {
    for (name, result) in checks {
        match result {
            Ok(()) => println!("{indent}  ok    {name}"),
            Err(why) => println!("{indent}  FAIL  {name}: {why}"),
        }
    }
}

fn report_entry(
    kernel: &kernels::Kernel,
    lsm_param: bool,
    boot: &check::Boot,
) -> serde_json::Value {
    let passes: Vec<_> = boot
        .passes
        .iter()
        .map(|p| {
            serde_json::json!({
                "skip_hooks": p.name,
                "hooks": p.hooks,
                "loop_time": p.loop_time,
                "statistics": p.statistics.iter().map(|(hooks, runs, mean, missed)| serde_json::json!({
                    "hooks": hooks, "runs": runs, "mean_ns": mean, "missed": missed,
                })).collect::<Vec<_>>(),
                "failed": p.checks.iter().filter(|(_, r)| r.is_err()).map(|(n, _)| n).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "series": kernel.series,
        "release": kernel.release,
        "lsm_parameter": lsm_param,
        "bpf_lsm_active": boot.kernel.bpf_lsm,
        "passed": boot.passed(),
        "failed": boot.failed(),
        "passes": passes,
    })
}

/// How to boot a VM.
struct BootOptions {
    /// With `LSM_WITH_BPF`.
    lsm: bool,
    /// qemu's `-m`.
    memory: &'static str,
    /// The initramfs's program to run as init, when it is not /init.
    init: Option<&'static str>,
    /// Seconds before the VM counts as hung and is killed.
    timeout: u32,
}

/// Boots one kernel and returns everything it wrote to its serial console.
fn boot(vmlinuz: &Path, initramfs: &Path, options: &BootOptions) -> anyhow::Result<String> {
    let timeout = options.timeout;
    let mut append = "console=ttyS0 panic=-1 quiet".to_owned();
    if options.lsm {
        append.push(' ');
        append.push_str(LSM_WITH_BPF);
    }
    if let Some(init) = options.init {
        append.push_str(&format!(" rdinit={init}"));
    }
    let out = Command::new("timeout")
        .args([
            "--kill-after=10",
            &timeout.to_string(),
            "qemu-system-x86_64",
        ])
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            options.memory,
            "-smp",
            "2",
        ])
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
