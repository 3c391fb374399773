//! The monitors compared: none, keytrail, auditd with equivalent rules, and a bpftrace script
//! doing the same tracing. Each starts, says when it is ready, and stops.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::host::{self, auditctl, on_path};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Monitor {
    Baseline,
    Keytrail,
    Auditd,
    Bpftrace,
}

impl Monitor {
    pub fn name(self) -> &'static str {
        match self {
            Monitor::Baseline => "baseline",
            Monitor::Keytrail => "keytrail",
            Monitor::Auditd => "auditd",
            Monitor::Bpftrace => "bpftrace",
        }
    }
}

/// What a monitor watches: the credential file.
pub struct Setup {
    pub keytrail: PathBuf,
    pub credential: PathBuf,
    pub out_dir: PathBuf,
    /// Passed to keytrail as `--skip-hooks`.
    pub skip_hooks: Option<String>,
    /// Passed to keytrail as `--config` (`--enforce`: a policy that refuses).
    pub config: Option<PathBuf>,
}

pub struct Running {
    monitor: Monitor,
    child: Option<Child>,
    output: PathBuf,
}

/// What a stopped monitor left: keytrail's peak memory and losses.
#[derive(Default)]
pub struct Stopped {
    pub peak_rss_kb: Option<u64>,
    pub dropped: Option<u64>,
    pub events: Option<u64>,
}

/// Wait after a monitor says it is ready, before measuring, for every monitor alike (the
/// baseline too): the first second after keytrail attached its probes ran an open loop ~35%
/// slower in one trial of two, and at its usual speed after that, with keytrail itself idle.
const SETTLE: Duration = Duration::from_millis(1500);

pub fn start(monitor: Monitor, s: &Setup) -> anyhow::Result<Running> {
    let output = s.out_dir.join(format!("{}.out", monitor.name()));
    let out = || fs::File::create(&output).context("creating monitor output");
    let child = match monitor {
        Monitor::Baseline => None,
        Monitor::Keytrail => {
            let watch = format!("{}=generic", s.credential.display());
            let child = host::off_workload_cpu(&mut Command::new(&s.keytrail))
                .args(["run", "--format", "json", "--watch", &watch])
                .args(s.skip_hooks.iter().flat_map(|k| ["--skip-hooks", k]))
                .args(
                    s.config
                        .iter()
                        .flat_map(|c| [std::ffi::OsStr::new("--config"), c.as_os_str()]),
                )
                .stdout(out()?)
                .stderr(Stdio::null())
                .spawn()
                .context("starting keytrail")?;
            wait_for_text(&output, "\"type\":\"ready\"", "keytrail's ready record")?;
            Some(child)
        }
        Monitor::Auditd => {
            let child = host::off_workload_cpu(&mut Command::new("auditd"))
                .arg("-n")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting auditd -n")?;
            sleep(Duration::from_millis(500));
            let cred = s.credential.display().to_string();
            // Debian's default audit.rules: a backlog of 8192 (the kernel's 64 stalls at once).
            auditctl(&["-D"])?;
            auditctl(&["-b", "8192"])?;
            auditctl(&["-w", &cred, "-p", "r", "-k", "keytrail-bench"])?;
            for syscall in ["connect", "execve"] {
                auditctl(&[
                    "-a",
                    "always,exit",
                    "-F",
                    "arch=b64",
                    "-S",
                    syscall,
                    "-k",
                    "keytrail-bench",
                ])?;
            }
            Some(child)
        }
        Monitor::Bpftrace => {
            let script = format!(
                "tracepoint:sched:sched_process_exec {{ printf(\"exec %d %s\\n\", pid, comm); }}\n\
                 tracepoint:syscalls:sys_enter_openat /str(args->filename) == \"{}\"/ {{ printf(\"open %d %s\\n\", pid, comm); }}\n\
                 tracepoint:syscalls:sys_enter_connect {{ printf(\"connect %d %s\\n\", pid, comm); }}\n",
                s.credential.display()
            );
            let child = host::off_workload_cpu(&mut Command::new("bpftrace"))
                .args(["-e", &script])
                .stdout(out()?)
                .stderr(Stdio::null())
                .spawn()
                .context("starting bpftrace")?;
            wait_for_text(&output, "Attaching", "bpftrace attaching its probes")?;
            Some(child)
        }
    };
    sleep(SETTLE);
    Ok(Running {
        monitor,
        child,
        output,
    })
}

/// A bench that fails midway must not leave audit rules or a tracer behind.
impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.monitor == Monitor::Auditd {
                let _ = host::audit_off();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Running {
    pub fn stop(mut self) -> anyhow::Result<Stopped> {
        let mut stopped = Stopped::default();
        let Some(mut child) = self.child.take() else {
            return Ok(stopped);
        };
        if self.monitor == Monitor::Keytrail {
            stopped.peak_rss_kb = status_kb(child.id(), "VmHWM:");
        }
        if self.monitor == Monitor::Auditd {
            host::audit_off()?;
        }
        // keytrail and bpftrace stop on SIGINT; auditd ignores it and stops on SIGTERM.
        let signal = if self.monitor == Monitor::Auditd {
            libc::SIGTERM
        } else {
            libc::SIGINT
        };
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait()?;
        if self.monitor == Monitor::Keytrail {
            if !status.success() {
                bail!("keytrail exited with {status}");
            }
            let text = fs::read_to_string(&self.output)?;
            let stats = text
                .lines()
                .rev()
                .find(|l| l.contains("\"type\":\"stats\""))
                .context("keytrail printed no stats record")?;
            let field = |name: &str| -> Option<u64> {
                let rest = stats.split(&format!("\"{name}\":")).nth(1)?;
                rest.split([',', '}']).next()?.parse().ok()
            };
            stopped.dropped = field("dropped");
            stopped.events = field("events");
        }
        Ok(stopped)
    }
}

fn wait_for_text(path: &Path, text: &str, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if fs::read_to_string(path).is_ok_and(|t| t.contains(text)) {
            return Ok(());
        }
        sleep(Duration::from_millis(50));
    }
    bail!("no {what} within 30 s (see {})", path.display())
}

/// VmHWM: the process's peak resident memory.
/// A kB figure from /proc/PID/status (`field` with its colon: "VmHWM:", "VmRSS:").
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether a monitor's tools are here; installs auditd and bpftrace from Debian when missing.
pub fn available(monitor: Monitor) -> Result<(), String> {
    let (program, package) = match monitor {
        Monitor::Auditd => ("auditctl", "auditd"),
        Monitor::Bpftrace => ("bpftrace", "bpftrace"),
        _ => return Ok(()),
    };
    if on_path(program) {
        return Ok(());
    }
    eprintln!("xtask bench: installing {package} to compare against it");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok && on_path(program) {
        Ok(())
    } else {
        Err(format!(
            "{package} could not be installed (apt-get install {package})"
        ))
    }
}
