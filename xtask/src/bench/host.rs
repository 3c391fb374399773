//! Keeping the machine fair between monitors: the workload on a CPU of its own, and the kernel's
//! audit state as it was before any monitor ran.
//!
//! Two things skew a side-by-side run here if left alone, both measured:
//! - The VM's CPUs are not alike: the same loop ran ~25% slower on one than the other, and a
//!   workload that the scheduler moves between them swings from run to run. The workload runs on
//!   CPU 0, the monitors' own threads on the others.
//! - Once auditd has enabled audit, the kernel gives every new process an audit context, and every
//!   syscall of it takes the slow path (4% of an open loop, with no rules loaded), until reboot.
//!   So after the first auditd round, every later baseline would pay part of auditd's cost. A
//!   `never,task` rule stops that for processes started after it; it is in place whenever auditd
//!   is not the monitor under test, and the rules found at the start are put back at the end.
use std::{os::unix::process::CommandExt, process::Command};

use anyhow::bail;

/// The CPU the workloads run on.
const WORKLOAD_CPU: usize = 0;

/// Runs `command` on the workload CPU.
pub fn on_workload_cpu(command: &mut Command) -> &mut Command {
    pin(command, |cpu| cpu == WORKLOAD_CPU)
}

/// Runs `command` (a monitor) anywhere but the workload CPU, if there is anywhere else.
pub fn off_workload_cpu(command: &mut Command) -> &mut Command {
    if cpus() < 2 {
        return command;
    }
    pin(command, |cpu| cpu != WORKLOAD_CPU)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn pin(command: &mut Command, allowed: impl Fn(usize) -> bool) -> &mut Command {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET stays within it for CPUs that exist.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in (0..cpus()).filter(|&c| allowed(c)) {
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: sched_setaffinity is async-signal-safe, and `set` is copied into the closure.
    unsafe {
        command.pre_exec(move || {
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// The audit rules and enabled flag found at the start, put back on drop.
pub struct AuditState {
    rules: Vec<String>,
    enabled: String,
}

impl AuditState {
    /// Saves the audit state and keeps audit contexts off new processes. None when there is no
    /// auditctl (then audit was never enabled by this benchmark either).
    pub fn quiet() -> anyhow::Result<Option<Self>> {
        if !on_path("auditctl") {
            return Ok(None);
        }
        let status = auditctl_output(&["-s"])?;
        let enabled = status
            .lines()
            .find_map(|l| l.strip_prefix("enabled "))
            .unwrap_or("0")
            .trim()
            .to_owned();
        let rules = auditctl_output(&["-l"])?
            .lines()
            .filter(|l| l.starts_with('-'))
            .map(str::to_owned)
            .collect();
        audit_off()?;
        Ok(Some(Self { rules, enabled }))
    }
}

/// No rules but `never,task`, and audit disabled: the state between auditd rounds.
pub fn audit_off() -> anyhow::Result<()> {
    auditctl(&["-D"])?;
    auditctl(&["-a", "never,task"])?;
    auditctl(&["-e", "0"])
}

impl Drop for AuditState {
    fn drop(&mut self) {
        let restore = || -> anyhow::Result<()> {
            auditctl(&["-D"])?;
            for rule in &self.rules {
                auditctl(&rule.split_whitespace().collect::<Vec<_>>())?;
            }
            auditctl(&["-e", &self.enabled])
        };
        if let Err(e) = restore() {
            eprintln!("\n*** xtask bench: the audit rules were not all restored: {e:#} ***\n");
        }
    }
}

pub fn auditctl(args: &[&str]) -> anyhow::Result<()> {
    auditctl_output(args).map(drop)
}

fn auditctl_output(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("auditctl").args(args).output()?;
    if !out.status.success() {
        bail!(
            "auditctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` is installed in the system directories (root's PATH may lack /usr/sbin).
pub fn on_path(program: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(program).is_file())
}
