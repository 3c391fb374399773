//! What must be true before the probes can load, each failure with what to do about it.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PreflightError {
    /// Loading and attaching the probes needs capabilities the process lacks.
    #[error(
        "keytrail run lacks {}: it needs them to load its kernel probes; run it as root (sudo), \
         or give its service these capabilities (the packaged unit does): {}",
        .missing.join(", "),
        REQUIRED.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(" ")
    )]
    MissingCapabilities { missing: Vec<&'static str> },
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
    /// Every cgroup2 mount it can see is a cgroup below the root: keytrail runs in a cgroup
    /// namespace (a container), and hooks there would see that cgroup's sockets only.
    #[error(
        "the cgroup2 hierarchy at {} is not its root (keytrail is in a cgroup namespace, as in \
         a container), and its hooks there would see only that cgroup's connections: give it \
         the host's (a DaemonSet mounts hostPath /sys/fs/cgroup at /sys/fs/cgroup), or run it \
         in the host's cgroup namespace",
        .0.display()
    )]
    CgroupNotRoot(PathBuf),
}

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// The capabilities `keytrail run` starts with, and what each is for. After load it keeps
/// only some of them (privileges.rs). CAP_SYS_RESOURCE is welcome, not required: kernels
/// before 5.11 charge maps to the locked-memory limit, which it lifts; some container hosts
/// (this project's CI) give root none.
pub const REQUIRED: &[(&str, u32)] = &[
    // bpf(): maps, programs, BTF (kernels before 5.8 want CAP_SYS_ADMIN for all of it).
    ("CAP_BPF", 39),
    // Tracing programs (tracepoints, kprobes, uprobes) and perf events.
    ("CAP_PERFMON", 38),
    // Attaching to the root cgroup (connects and packets).
    ("CAP_NET_ADMIN", 12),
    // Mounting tracefs, bpffs and securityfs where they are not; perf events where
    // kernel.perf_event_paranoid is 3 (Debian's).
    ("CAP_SYS_ADMIN", 21),
    // Reading users' credential files and watching their directories.
    ("CAP_DAC_READ_SEARCH", 2),
    // Reading other users' /proc/PID/environ and exe.
    ("CAP_SYS_PTRACE", 19),
    // Dropping the others after load.
    ("CAP_SETPCAP", 8),
];

/// The required capabilities the process's effective set lacks, by name. CAP_SYS_ADMIN
/// stands in for CAP_BPF and CAP_PERFMON, as the kernel lets it (and as kernels before 5.8,
/// and container runtimes that do not know the two, require).
pub fn missing_capabilities(effective: u64) -> Vec<&'static str> {
    const CAP_SYS_ADMIN: u32 = 21;
    let admin = effective & (1u64 << CAP_SYS_ADMIN) != 0;
    REQUIRED
        .iter()
        .filter(|(name, _)| !(admin && matches!(*name, "CAP_BPF" | "CAP_PERFMON")))
        .filter(|(_, bit)| effective & (1u64 << bit) == 0)
        .map(|(name, _)| *name)
        .collect()
}

/// The effective capability set, from /proc/self/status (`CapEff`); none when unreadable.
fn effective_capabilities() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Paths the probes use, once checked.
pub struct Environment {
    pub tracefs: PathBuf,
    pub cgroup2: PathBuf,
}

pub fn check() -> Result<Environment, PreflightError> {
    let missing = missing_capabilities(effective_capabilities());
    if !missing.is_empty() {
        return Err(PreflightError::MissingCapabilities { missing });
    }
    if !Path::new(BTF_PATH).exists() {
        return Err(PreflightError::NoBtf(BTF_PATH.into()));
    }
    let tracefs = match mount_point("tracefs") {
        Some(path) => path,
        None => mount("tracefs", Path::new("/sys/kernel/tracing"))?,
    };
    let cgroups = mount_points("cgroup2");
    let cgroup2 = match cgroups.iter().find(|p| is_hierarchy_root(p)) {
        Some(root) => root.clone(),
        None if cgroups.is_empty() => {
            // Mounted from inside a cgroup namespace, it would be that namespace's cgroup.
            let mounted = mount("cgroup2", Path::new("/run/keytrail/cgroup2"))?;
            if !is_hierarchy_root(&mounted) {
                return Err(PreflightError::CgroupNotRoot(mounted));
            }
            mounted
        }
        None => return Err(PreflightError::CgroupNotRoot(cgroups[0].clone())),
    };
    Ok(Environment { tracefs, cgroup2 })
}

/// The initial cgroup namespace's inode number (`CGROUP_NS_INIT_INO` in the kernel).
const INITIAL_CGROUP_NS: u64 = 0xEFFF_FFFB;

/// In a cgroup namespace of its own (a container, even one that sees the host's processes),
/// keytrail reads every process's cgroup relative to its own (`0::/../../kubepods.slice/...`),
/// and policy's cgroup contexts would not match. It joins the initial namespace first, through
/// the first process it sees in it (the host's init, under `hostPID`), before any thread starts
/// (the namespace is each thread's own), and says so; where it cannot, it says what that costs.
pub fn join_host_cgroup_namespace() {
    let inode = |path: &Path| fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    if inode(Path::new("/proc/self/ns/cgroup")).is_ok_and(|own| own != INITIAL_CGROUP_NS) {
        let joined = initial_cgroup_namespace().and_then(|(pid, ns)| {
            use std::os::fd::AsRawFd;
            // SAFETY: setns with a namespace descriptor we hold open, and a namespace type.
            match unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWCGROUP) } {
                0 => Ok(pid),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
        match joined {
            Ok(pid) => log::info!(
                "joined the initial cgroup namespace (through pid {pid}): keytrail was in one of \
                 its own (a container), where processes' cgroups read relative to it"
            ),
            Err(e) => log::warn!(
                "keytrail is in a cgroup namespace of its own and cannot join the initial one \
                 ({e}): processes' cgroups read relative to it, and policy's cgroup contexts may \
                 not match (a container needs the host's pids and CAP_SYS_ADMIN)"
            ),
        }
    }
}

/// The first process in the initial cgroup namespace, and that namespace opened.
fn initial_cgroup_namespace() -> std::io::Result<(u32, fs::File)> {
    let mut pids: Vec<u32> = fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let path = PathBuf::from(format!("/proc/{pid}/ns/cgroup"));
        let Ok(ns) = fs::File::open(&path) else {
            continue;
        };
        if ns
            .metadata()
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == INITIAL_CGROUP_NS)
        {
            return Ok((pid, ns));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "no process of the initial cgroup namespace is visible",
    ))
}

/// The first mount of filesystem type `fs`, from /proc/self/mounts.
fn mount_point(fs: &str) -> Option<PathBuf> {
    mount_points(fs).into_iter().next()
}

/// The mounts of filesystem type `fs`, in /proc/self/mounts's order.
fn mount_points(fs: &str) -> Vec<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, path, kind) = (fields.next()?, fields.next()?, fields.next()?);
            (kind == fs).then(|| PathBuf::from(path))
        })
        .collect()
}

/// Whether the cgroup2 directory `dir` is the hierarchy's root, where hooks see every socket:
/// `cgroup.events` exists in every cgroup but the root. (In a cgroup namespace, the mount's
/// top is the namespace's cgroup, which looks like a root from inside but has that file.)
fn is_hierarchy_root(dir: &Path) -> bool {
    dir.join("cgroup.controllers").exists() && !dir.join("cgroup.events").exists()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hierarchys_root_is_taken_for_the_cgroup_hooks() {
        let roots: Vec<PathBuf> = mount_points("cgroup2")
            .into_iter()
            .filter(|p| is_hierarchy_root(p))
            .collect();
        let Some(root) = roots.first() else {
            panic!(
                "this host's cgroup2 root is not mounted: {:?}",
                mount_points("cgroup2")
            );
        };
        // A cgroup of its own below the root (this development host's cgroup2 has none).
        let child = root.join(format!("keytrail-preflight-test-{}", std::process::id()));
        fs::create_dir(&child).expect("making a child cgroup (run as root)");
        let judged = is_hierarchy_root(&child);
        fs::remove_dir(&child).unwrap();
        assert!(!judged, "{child:?} is a child cgroup");
        assert!(!is_hierarchy_root(Path::new("/proc")));
    }

    #[test]
    fn the_error_names_each_missing_capability() {
        let all = REQUIRED.iter().fold(0u64, |set, (_, bit)| set | 1 << bit);
        assert!(missing_capabilities(all).is_empty());
        assert!(
            missing_capabilities(u64::MAX >> 23).is_empty(),
            "root's set (41 bits)"
        );
        let without = all & !(1 << 12) & !(1 << 39);
        assert_eq!(
            missing_capabilities(without),
            ["CAP_NET_ADMIN"],
            "CAP_SYS_ADMIN stands in"
        );
        let without = all & !(1 << 21) & !(1 << 39);
        assert_eq!(missing_capabilities(without), ["CAP_BPF", "CAP_SYS_ADMIN"]);
        let e = PreflightError::MissingCapabilities {
            missing: missing_capabilities(0),
        }
        .to_string();
        assert!(
            e.starts_with("keytrail run lacks CAP_BPF, CAP_PERFMON"),
            "{e}"
        );
    }
}
