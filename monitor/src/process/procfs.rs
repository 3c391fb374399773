//! The tracker's input from the host: a process as /proc/PID tells it (stat, status, cmdline,
//! exe, loginuid, sessionid). Only the tracker reads procfs, and only through its `procfs` root,
//! so every stage after decode can run without a host.
use std::{fs, path::Path, sync::Arc};

use super::{Image, ProcKey, Process, StartTicks};

/// What /proc/PID/stat says that keytrail uses.
pub(super) struct Stat {
    pub comm: String,
    pub ppid: u32,
    pub start: StartTicks,
}

pub(super) fn read_stat(dir: &Path) -> Option<Stat> {
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    // comm is in parentheses and may hold spaces or ')': split at the last ')'.
    let (head, tail) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = tail.split_whitespace().collect();
    // After comm: state(0) ppid(1) ... starttime is field 22 of stat, index 19 here.
    Some(Stat {
        comm,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// A process from procfs (its environment is the caller's business).
pub(super) fn read_procfs(proc_root: &Path, pid: u32) -> Option<Process> {
    let dir = proc_root.join(pid.to_string());
    let Stat { comm, ppid, start } = read_stat(&dir)?;
    let status = fs::read_to_string(dir.join("status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let read_id = |name: &str| -> Option<u32> {
        let value: u32 = fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (value != u32::MAX).then_some(value)
    };
    let argv = fs::read(dir.join("cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let exe = fs::read_link(dir.join("exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let exe_owner = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(dir.join("exe")).ok().map(|m| m.uid())
    };
    Some(Process {
        key: ProcKey { pid, start },
        ppid,
        uid,
        loginuid: read_id("loginuid"),
        sessionid: read_id("sessionid"),
        exited_ns: None,
        image: Arc::new(Image {
            comm,
            exe,
            argv,
            exe_owner,
            resolved_exe: None,
            ..Image::default()
        }),
    })
}
