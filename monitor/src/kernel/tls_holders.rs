//! TLS writes read from credential holders only: uprobes scoped to processes.
//!
//! A uprobe set for all processes puts a breakpoint into every process that maps the library:
//! each `SSL_write` of every program on the host then traps into the kernel (some 14 us on a VM,
//! more than a small request over loopback costs). Scoped to processes, the kernel sets the
//! breakpoint only in their memory, and a process that holds no credential pays nothing.
//!
//! The kernel's per-process scoping that follows children is the perf event's `inherit`: an
//! event opened on a process is copied to each child it forks from then on, in the kernel, with
//! no race. Only uprobes defined through tracefs can be inherited (an event of the `uprobe` PMU
//! names its file by a pointer into keytrail's memory, which a child's copy cannot read), so:
//! - each hooked function is a tracefs uprobe event in keytrail's own group, its file named by
//!   `/proc/self/fd/N` (the descriptor the symbols were read from: a path swapped since cannot
//!   redirect it);
//! - one event per function, opened on keytrail itself, carries the BPF program: the kernel
//!   runs an event's programs for every process the event's breakpoints are in, and a program
//!   set on each process's event would run once per process followed;
//! - `follow(pid, children)` opens one event per function on that process, which puts the
//!   breakpoints into it and nothing else; inherited (`children`) for a reader, whose children
//!   hold what it read, and not for the ancestors that hold its read only as its ancestors (a
//!   sibling forked later holds nothing).
//!
//! An event follows a process across exec, except into a setuid program (the kernel drops a
//! process's perf events then). A process's events are closed when the tracker forgets it (it
//! and its descendants gone: a reader's children lose theirs with the reader's), and the
//! tracefs definitions removed when keytrail stops; a crash leaves definitions without events
//! (which cost nothing), removed at the next start. The perf_event_paranoid > 2 of Debian's
//! kernels makes each event take CAP_SYS_ADMIN, which keytrail gives up after start: the daemon
//! reads every process's writes there instead.
use std::{
    collections::HashMap,
    fs::OpenOptions,
    io::Write,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
    path::{Path, PathBuf},
};

/// Where tracefs is mounted, newest first.
const TRACEFS: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// Prefix of keytrail's tracefs groups; the keytrail's pid follows.
const GROUP_PREFIX: &str = "keytrail_";
/// Events open for followed processes, at most (one per process and hooked function, each a
/// descriptor): keytrail raises its descriptor limit for them at start.
pub const MAX_EVENTS: usize = 16_384;

/// `perf_event_attr` as of its first version (64 bytes), which the kernel accepts as is.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}
const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_INHERIT: u64 = 1 << 1;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;

/// One hooked function: its tracefs event, its name there, and the event that carries the
/// program.
struct Point {
    id: u64,
    name: String,
    _carrier: OwnedFd,
}

/// A process followed: when it started (a reused pid is another process), its events (one per
/// point), and whether they go to its children.
struct Followed {
    start: u64,
    children: bool,
    events: Vec<OwnedFd>,
}

pub struct TlsHolders {
    tracefs: PathBuf,
    group: String,
    program: OwnedFd,
    points: Vec<Point>,
    /// Names given in tracefs so far (never reused: a failed one may linger).
    named: usize,
    /// Processes followed, by pid.
    followed: HashMap<u32, Followed>,
    /// Events open for followed processes: bounded by `MAX_EVENTS`.
    events: usize,
    /// Whether the log said the bound was reached, or a refusal.
    said_full: bool,
    said_refused: bool,
}

impl TlsHolders {
    /// Ready to define events for the uprobe program `program`; fails when tracefs cannot
    /// define uprobes here (not mounted, or locked down).
    pub fn new(program: BorrowedFd) -> Result<Self, String> {
        let tracefs = TRACEFS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("uprobe_events").exists())
            .ok_or("tracefs is not mounted (/sys/kernel/tracing/uprobe_events)")?;
        let program = program
            .try_clone_to_owned()
            .map_err(|e| format!("duplicating the program's descriptor: {e}"))?;
        let holders = Self {
            group: format!("{GROUP_PREFIX}{}", std::process::id()),
            tracefs,
            program,
            points: Vec::new(),
            named: 0,
            followed: HashMap::new(),
            events: 0,
            said_full: false,
            said_refused: false,
        };
        holders.remove_stale();
        Ok(holders)
    }

    /// Defines a uprobe at each of `offsets` in the file at `path` (keytrail's /proc/self/fd
    /// link to it: tracefs resolves it once, as it is defined), for processes followed (those
    /// already followed included, within `MAX_EVENTS`). A point that fails leaves no
    /// definition behind; those before it stay.
    pub fn add_points(&mut self, path: &Path, offsets: &[u64]) -> Result<(), String> {
        let path = path.to_str().ok_or("a path tracefs cannot take")?;
        if path.contains(char::is_whitespace) {
            return Err("a path tracefs cannot take (it has white space)".into());
        }
        for offset in offsets {
            self.add_point(path, *offset)?;
        }
        Ok(())
    }

    fn add_point(&mut self, path: &str, offset: u64) -> Result<(), String> {
        let name = format!("w{}", self.named);
        self.named += 1;
        self.command(&format!("p:{}/{name} {path}:{offset:#x}", self.group))
            .map_err(|e| format!("defining the uprobe in tracefs: {e}"))?;
        let undefine = |holders: &Self, why: String| {
            let _ = holders.command(&format!("-:{}/{name}", holders.group));
            why
        };
        let id_file = self
            .tracefs
            .join("events")
            .join(&self.group)
            .join(&name)
            .join("id");
        let Some(id) = std::fs::read_to_string(&id_file)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        else {
            return Err(undefine(
                self,
                format!("no event id in {}", id_file.display()),
            ));
        };
        let carrier = match open_event(id, std::process::id() as i32, false) {
            Ok(carrier) => carrier,
            Err(e) => return Err(undefine(self, format!("opening the uprobe event: {e}"))),
        };
        // SAFETY: an ioctl on descriptors this function owns; the argument is the program's
        // descriptor by value, as PERF_EVENT_IOC_SET_BPF takes it.
        let set = unsafe {
            libc::ioctl(
                carrier.as_raw_fd(),
                PERF_EVENT_IOC_SET_BPF,
                self.program.as_raw_fd(),
            )
        };
        if set != 0 {
            let e = std::io::Error::last_os_error();
            drop(carrier);
            return Err(undefine(
                self,
                format!("attaching the program to the uprobe event: {e}"),
            ));
        }
        for (pid, followed) in &mut self.followed {
            if self.events >= MAX_EVENTS {
                break; // said in `follow` when it counts
            }
            if let Ok(event) = open_event(id, *pid as i32, followed.children) {
                followed.events.push(event);
                self.events += 1;
            }
        }
        self.points.push(Point {
            id,
            name,
            _carrier: carrier,
        });
        Ok(())
    }

    /// Reads the TLS writes of process `pid` (started at `start`, as the tracker knows it),
    /// and with `children` those of the children it forks from now on. Returns false when it
    /// cannot be followed (gone, or the bound reached).
    pub fn follow(&mut self, pid: u32, start: u64, children: bool) -> bool {
        match self.followed.get(&pid) {
            Some(f) if f.start == start && (f.children || !children) => return true,
            // Followed alone so far (again, with its children), or a reused pid: afresh.
            Some(_) => self.unfollow(pid),
            None => {}
        }
        if self.events + self.points.len() > MAX_EVENTS {
            if !std::mem::replace(&mut self.said_full, true) {
                log::warn!(
                    "proof of use: {} credential holders followed ({MAX_EVENTS} events), no \
                     more will be until some are gone: the TLS requests of the others are not \
                     read",
                    self.followed.len()
                );
            }
            return false;
        }
        let mut events = Vec::with_capacity(self.points.len());
        for point in &self.points {
            match open_event(point.id, pid as i32, children) {
                Ok(event) => events.push(event),
                Err(e) => {
                    // Gone (ESRCH) is common; any other refusal is said once.
                    if e.raw_os_error() != Some(libc::ESRCH)
                        && !std::mem::replace(&mut self.said_refused, true)
                    {
                        log::warn!(
                            "proof of use: the kernel refused to follow process {pid}'s TLS \
                             writes ({e}); holders' requests may stay unread"
                        );
                    }
                    return false; // what was opened is closed
                }
            }
        }
        self.events += events.len();
        self.followed.insert(
            pid,
            Followed {
                start,
                children,
                events,
            },
        );
        true
    }

    /// Stops following `pid`: its events go, and the events its children inherited with them.
    fn unfollow(&mut self, pid: u32) {
        if let Some(followed) = self.followed.remove(&pid) {
            self.events -= followed.events.len();
        }
    }

    /// Stops following the processes `tracked` no longer knows. The tracker keeps an exited
    /// process while a descendant of it lives, and a reader's children's events go with the
    /// reader's: so a child that outlives its reader stays followed; and an exit whose event
    /// was lost (a flooded ring) does not leak.
    pub fn sweep(&mut self, tracked: impl Fn(u32, u64) -> bool) {
        let gone: Vec<u32> = self
            .followed
            .iter()
            .filter(|(pid, f)| !tracked(**pid, f.start))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in gone {
            self.unfollow(pid);
        }
        if self.events + self.points.len() <= MAX_EVENTS {
            self.said_full = false;
        }
    }

    fn command(&self, line: &str) -> std::io::Result<()> {
        let mut events = OpenOptions::new()
            .append(true)
            .open(self.tracefs.join("uprobe_events"))?;
        events.write_all(format!("{line}\n").as_bytes())
    }

    /// Removes the definitions an earlier keytrail left (a crash): those of groups whose
    /// process is gone, or is no keytrail (a reused pid).
    fn remove_stale(&self) {
        let Ok(defined) = std::fs::read_to_string(self.tracefs.join("uprobe_events")) else {
            return;
        };
        for line in defined.lines() {
            // "p:keytrail_123/w0 /path:0x..."
            let Some(event) = line
                .split_whitespace()
                .next()
                .and_then(|e| e.split_once(':'))
                .map(|(_, e)| e)
            else {
                continue;
            };
            let Some(pid) = event
                .strip_prefix(GROUP_PREFIX)
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            let keytrail = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "keytrail");
            if pid != std::process::id() && !keytrail {
                let _ = self.command(&format!("-:{event}"));
            }
        }
    }
}

impl Drop for TlsHolders {
    fn drop(&mut self) {
        self.followed.clear();
        // The events go first: a definition in use cannot be removed.
        let names: Vec<String> = self.points.drain(..).map(|p| p.name).collect();
        for name in names {
            if let Err(e) = self.command(&format!("-:{}/{name}", self.group)) {
                log::warn!(
                    "removing the uprobe {}/{name} from tracefs: {e}",
                    self.group
                );
            }
        }
    }
}

/// Opens tracefs event `id` on process `pid` (every thread of it, and with `inherit` the
/// children it forks after), enabled.
fn open_event(id: u64, pid: i32, inherit: bool) -> std::io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        size: size_of::<PerfEventAttr>() as u32,
        config: id,
        sample_period: 1,
        wakeup_events: 1,
        flags: if inherit { PERF_FLAG_INHERIT } else { 0 },
        ..Default::default()
    };
    // SAFETY: perf_event_open with a valid attribute block of the size it states; the
    // descriptor returned is owned here.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            pid,
            -1i32,
            -1i32,
            PERF_FLAG_FD_CLOEXEC,
        )
    } as RawFd;
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just returned to this function.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an ioctl without argument on the descriptor owned here.
    if unsafe { libc::ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}
