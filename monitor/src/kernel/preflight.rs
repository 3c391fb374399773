//! What must be true before the probes can load, each failure with what to do about it.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PreflightError {
    /// Loading BPF programs needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_NET_ADMIN).
    #[error("keytrail run needs root to load its kernel probes: run it with sudo (or as root)")]
    NotRoot,
    /// The kernel has no BTF, so struct offsets cannot be found.
    #[error(
        "{0} is missing: this kernel was built without CONFIG_DEBUG_INFO_BTF, and keytrail needs BTF to read kernel structures"
    )]
    NoBtf(PathBuf),
    /// A pseudo-filesystem the probes need is not mounted and could not be mounted.
    #[error(
        "{fs} is not mounted at {path} and mounting it failed ({why}); mount it and try again: mount -t {fs} none {path}"
    )]
    Mount {
        fs: &'static str,
        path: PathBuf,
        why: String,
    },
}

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// Paths the probes use, once checked.
pub struct Environment {
    pub tracefs: PathBuf,
    pub cgroup2: PathBuf,
}

pub fn check() -> Result<Environment, PreflightError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(PreflightError::NotRoot);
    }
    if !Path::new(BTF_PATH).exists() {
        return Err(PreflightError::NoBtf(BTF_PATH.into()));
    }
    let tracefs = match mount_point("tracefs") {
        Some(path) => path,
        None => mount("tracefs", Path::new("/sys/kernel/tracing"))?,
    };
    let cgroup2 = match mount_point("cgroup2") {
        Some(path) => path,
        None => mount("cgroup2", Path::new("/run/keytrail/cgroup2"))?,
    };
    Ok(Environment { tracefs, cgroup2 })
}

/// The first mount of filesystem type `fs`, from /proc/self/mounts.
fn mount_point(fs: &str) -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, path, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == fs).then(|| PathBuf::from(path))
    })
}

fn mount(fs: &'static str, path: &Path) -> Result<PathBuf, PreflightError> {
    log::info!("{fs} is not mounted; mounting it at {}", path.display());
    let error = |why: String| PreflightError::Mount {
        fs,
        path: path.into(),
        why,
    };
    fs::create_dir_all(path).map_err(|e| error(e.to_string()))?;
    let status = Command::new("mount")
        .args(["-t", fs, "none"])
        .arg(path)
        .status();
    match status {
        Ok(s) if s.success() => Ok(path.into()),
        Ok(s) => Err(error(format!("mount exited with {s}"))),
        Err(e) => Err(error(e.to_string())),
    }
}
