//! Which TLS libraries keytrail hooks for proof of use, found per process from its mappings.
//!
//! A uprobe is set on a file (an inode), for every process that maps it: a library needs
//! hooking once, whichever process brought it. They are found
//! - at start: the system library directories, and the mappings of every running process
//!   (executables included: node carries its own OpenSSL);
//! - as a process makes its first TCP connection: its mappings and its executable, where a
//!   library it loaded since exec is (python loads libssl with `import ssl`; a virtualenv or a
//!   container brings its own copy). The first request of a process that brought a new library
//!   may come before the hook is set; the next ones are read. (Not at exec: examining every new
//!   executable on the drain's time delayed the events after it, enough for a short-lived
//!   reader to be gone before its executable was resolved.)
//!
//! A file is examined once (by device and inode): its dynamic symbols say whether it has a
//! write function keytrail hooks. A process that speaks TLS through none (Go's crypto/tls,
//! rustls, a statically linked and stripped binary) is named in the log once per executable,
//! so users know where uses stay inferred.
use std::{
    collections::{HashMap, HashSet},
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use object::{Object, ObjectSection, ObjectSymbol, SectionIndex, read::ReadCache};

use super::probes::Probes;

/// The write functions hooked: each takes (session, buffer, length) first.
pub const WRITE_FUNCTIONS: &[&str] = &["SSL_write", "SSL_write_ex", "gnutls_record_send"];

/// Where the system's shared libraries are.
const LIBRARY_DIRS: &[&str] = &[
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
];

/// Files examined, at most; past it the record starts afresh (a file is then examined again).
const MAX_EXAMINED: usize = 65_536;
/// Bytes of an `Elf64_Sym`: name (4), info and other (2), section index (2), value (8), size
/// (8).
const ELF64_SYM: usize = 24;
/// Bytes a file examined may have (node's executable, with its OpenSSL, is some 100 MiB).
const MAX_FILE: u64 = 512 << 20;
/// Files hooked, at most. Any user can map a file named like a TLS library that defines
/// `SSL_write`: each costs the kernel a uprobe per function, so past this no more are hooked
/// (said once in the log).
const MAX_HOOKED: usize = 256;

/// A file as the kernel knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileId {
    dev: u64,
    ino: u64,
}

/// What a file turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Examined {
    /// It has a hooked write function, and the hook is set.
    Hooked,
    /// It has one, and the kernel refused the hook.
    Refused,
    /// A Go program: crypto/tls has no symbol to hook.
    Go,
    /// No hooked write function (or not an ELF file keytrail can read).
    Without,
}

/// Whether a process's TLS writes are read, as far as its mappings tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsWrites {
    /// It maps a hooked library (or is a hooked executable).
    Read,
    /// It maps none.
    Unread,
    /// It was gone before its mappings were read: its writes, if any were read, are in the
    /// rings before its exit.
    Unknown,
}

#[derive(Default)]
pub struct TlsLibraries {
    examined: HashMap<FileId, Examined>,
    /// The hooked files, as first found.
    hooked: Vec<PathBuf>,
    /// Processes already looked at (by pid; forgotten at exit), and whether their TLS writes
    /// are read.
    processes: HashMap<u32, bool>,
    /// Executables named in the log as speaking TLS through nothing hooked.
    said: HashSet<FileId>,
    /// Whether the log said `MAX_HOOKED` was reached.
    said_full: bool,
}

impl TlsLibraries {
    /// The hooked files, for `ready`.
    pub fn hooked(&self) -> Vec<String> {
        self.hooked
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    /// At start: the libraries in the system directories, and those running processes map.
    pub fn discover(&mut self, probes: &mut Probes) {
        for dir in LIBRARY_DIRS {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if is_tls_library_name(&name.to_string_lossy()) {
                    self.examine(&entry.path(), None, false, probes);
                }
            }
        }
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in procs.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                self.look_at(pid, probes);
            }
        }
        self.processes.clear();
    }

    /// Process `pid` made a TCP connection: whether its TLS writes are read (the libraries in
    /// its mappings examined first, the first time).
    pub fn on_connect(&mut self, pid: u32, probes: &mut Probes) -> TlsWrites {
        match self.processes.get(&pid) {
            Some(true) => TlsWrites::Read,
            Some(false) => TlsWrites::Unread,
            None => self.look_at(pid, probes),
        }
    }

    /// Process `pid` sent a TLS ClientHello: when its writes are not read, say so, once per
    /// executable.
    pub fn on_hello(&mut self, pid: u32) {
        if self.processes.get(&pid) != Some(&false) {
            return;
        }
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let Ok(meta) = std::fs::metadata(&exe) else {
            return;
        };
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        if !self.said.insert(id) {
            return;
        }
        let path = std::fs::read_link(&exe).unwrap_or(exe);
        let why = match self.examined.get(&id) {
            Some(Examined::Go) => "a Go program: crypto/tls has no function to hook",
            Some(Examined::Refused) => "the kernel refused the hook on its TLS library",
            _ => {
                "no hooked TLS library (OpenSSL or GnuTLS) in its mappings: rustls, a static \
                  or stripped build, or another library"
            }
        };
        // Debug-quoted: a path is the program's to choose, control characters included.
        log::info!("proof of use unavailable for {path:?}: {why}; its uses are inferred");
    }

    /// Process `pid` exited or ran a new program: what its mappings said no longer holds.
    pub fn forget(&mut self, pid: u32) {
        self.processes.remove(&pid);
    }

    /// Examines the TLS libraries and the executable `pid` maps; whether one is hooked.
    fn look_at(&mut self, pid: u32, probes: &mut Probes) -> TlsWrites {
        // Empty for a zombie: a short-lived client (curl) has often exited by the time its
        // connect is handled. Not remembered: the pid may be another process's next.
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        if maps.is_empty() {
            return TlsWrites::Unknown;
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let mut read = false;
        let mut seen = HashSet::new();
        for mapping in maps.lines().filter_map(Mapping::parse) {
            if !seen.insert(mapping.id) {
                continue;
            }
            let file_name = mapping.path.rsplit('/').next().unwrap_or_default();
            let is_exe = exe.as_deref() == Some(Path::new(mapping.path));
            if !is_exe && !is_tls_library_name(file_name) {
                continue;
            }
            let verdict = match self.examined.get(&mapping.id) {
                Some(v) => *v,
                None => {
                    // In the process's own view of the filesystem (a container's).
                    let path = PathBuf::from(format!("/proc/{pid}/root{}", mapping.path));
                    self.examine(&path, Some(mapping.id), false, probes)
                }
            };
            read |= verdict == Examined::Hooked;
        }
        self.processes.insert(pid, read);
        if read {
            TlsWrites::Read
        } else {
            TlsWrites::Unread
        }
    }

    /// Reads `path`'s symbols, hooks its write functions if it has any, and remembers what it
    /// is. `expected`: the file a process's mappings named; another file at the path (a user
    /// swapped it since) is not examined. `follow`: `path` is /proc/PID/exe, whose last step
    /// is the kernel's link to the file; any other is opened without following a last symlink.
    ///
    /// The file is opened once, and everything after goes through that descriptor: the symbols
    /// are read from it (by read, not mmap: a user truncating their file cannot fault keytrail)
    /// and the uprobes are set through /proc/self/fd, by offset, so a path swapped between two
    /// looks cannot put a probe into another file.
    fn examine(
        &mut self,
        path: &Path,
        expected: Option<FileId>,
        follow: bool,
        probes: &mut Probes,
    ) -> Examined {
        use std::os::unix::fs::OpenOptionsExt;
        let no_follow = if follow { 0 } else { libc::O_NOFOLLOW };
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(no_follow | libc::O_NONBLOCK)
            .open(path)
        else {
            return Examined::Without;
        };
        let Ok(meta) = file.metadata() else {
            return Examined::Without;
        };
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        if !meta.is_file() || meta.len() > MAX_FILE || expected.is_some_and(|e| e != id) {
            return Examined::Without;
        }
        if let Some(v) = self.examined.get(&id) {
            return *v;
        }
        let (found, go) = write_functions(&file);
        let functions: Vec<&str> = found.iter().map(|(name, _)| *name).collect();
        let offsets: Vec<u64> = found.iter().map(|(_, offset)| *offset).collect();
        let by_descriptor = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let verdict = if !functions.is_empty() && self.hooked.len() >= MAX_HOOKED {
            if !std::mem::replace(&mut self.said_full, true) {
                log::warn!(
                    "proof of use: {MAX_HOOKED} TLS libraries hooked, no more will be: requests \
                     through {path:?} and other new ones are not read"
                );
            }
            Examined::Refused
        } else if !functions.is_empty() {
            match probes.hook_tls_writes(&by_descriptor, &offsets) {
                Ok(()) => {
                    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
                    log::info!("proof of use: hooked {} in {shown:?}", functions.join(", "));
                    self.hooked.push(shown);
                    Examined::Hooked
                }
                Err(e) => {
                    log::warn!(
                        "proof of use: hooking {} in {path:?} failed: {e}; requests through it \
                         are not read",
                        functions.join(", ")
                    );
                    Examined::Refused
                }
            }
        } else if go {
            Examined::Go
        } else {
            Examined::Without
        };
        if self.examined.len() >= MAX_EXAMINED {
            // Hooked files stay known: hooking one again would attach twice.
            self.examined
                .retain(|_, v| matches!(v, Examined::Hooked | Examined::Refused));
        }
        self.examined.insert(id, verdict);
        verdict
    }
}

/// `libssl.so.3`, `libgnutls.so.30`, a wheel's `libssl-1b2c3d.so.3`.
fn is_tls_library_name(name: &str) -> bool {
    (name.starts_with("libssl") || name.starts_with("libgnutls")) && name.contains(".so")
}

/// The hooked write functions `file` defines, each with its offset in the file, and whether it
/// is a Go program.
fn write_functions(file: &File) -> (Vec<(&'static str, u64)>, bool) {
    let cache = ReadCache::new(file);
    let Ok(elf) = object::File::parse(&cache) else {
        return (Vec::new(), false);
    };
    let go = elf.section_by_name(".go.buildinfo").is_some();
    // Most executables define none: one read of the dynamic string table says so, where
    // walking the symbols would read each name (tens of milliseconds for python's, on the
    // drain's time).
    let names = elf
        .section_by_name(".dynstr")
        .and_then(|s| s.data().ok())
        .unwrap_or_default();
    let defines = |function: &str| {
        let wanted = [function.as_bytes(), b"\0"].concat();
        names.windows(wanted.len()).any(|w| w == wanted.as_slice())
    };
    if !WRITE_FUNCTIONS.iter().any(|f| defines(f)) {
        return (Vec::new(), go);
    }
    // The address is where the section is loaded; the probe wants the file offset.
    let file_offset = |index: SectionIndex, address: u64| {
        let section = elf.section_by_index(index).ok()?;
        let (offset, _) = section.file_range()?;
        Some(address.checked_sub(section.address())? + offset)
    };
    let mut found: Vec<(&'static str, u64)> = if elf.is_64() && elf.is_little_endian() {
        // The symbol table in one read, walked here: through `object`, each name is a read of
        // its own (160 ms for node's tens of thousands, on the drain's time).
        let symbols = elf
            .section_by_name(".dynsym")
            .and_then(|s| s.data().ok())
            .unwrap_or_default();
        symbols
            .as_chunks::<ELF64_SYM>()
            .0
            .iter()
            .filter_map(|sym| {
                let at = u32::from_le_bytes(sym[0..4].try_into().ok()?) as usize;
                let index = u16::from_le_bytes(sym[6..8].try_into().ok()?);
                let address = u64::from_le_bytes(sym[8..16].try_into().ok()?);
                if index == 0 || index >= 0xff00 {
                    return None; // undefined, or a special index
                }
                let name = names.get(at..)?;
                let function = WRITE_FUNCTIONS.iter().copied().find(|f| {
                    name.get(..f.len() + 1)
                        .is_some_and(|n| &n[..f.len()] == f.as_bytes() && n[f.len()] == 0)
                })?;
                Some((function, file_offset(SectionIndex(index.into()), address)?))
            })
            .collect()
    } else {
        elf.dynamic_symbols()
            .filter(|s| s.is_definition())
            .filter_map(|s| {
                let name = s.name().ok()?;
                let function = WRITE_FUNCTIONS.iter().find(|f| **f == name).copied()?;
                Some((function, file_offset(s.section_index()?, s.address())?))
            })
            .collect()
    };
    found.sort_unstable();
    found.dedup_by_key(|(name, _)| *name);
    (found, go)
}

/// One line of /proc/PID/maps that maps a file executable.
struct Mapping<'a> {
    id: FileId,
    path: &'a str,
}

impl<'a> Mapping<'a> {
    /// `start-end perms offset major:minor inode path`; None for lines that are not an
    /// executable mapping of a file.
    fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.splitn(6, ' ');
        let (_, perms, _, dev, inode) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let path = fields.next()?.trim_start();
        if !perms.contains('x') || !path.starts_with('/') || path.ends_with(" (deleted)") {
            return None;
        }
        let (major, minor) = dev.split_once(':')?;
        let (major, minor) = (
            u64::from_str_radix(major, 16).ok()?,
            u64::from_str_radix(minor, 16).ok()?,
        );
        let ino: u64 = inode.parse().ok()?;
        if ino == 0 {
            return None;
        }
        Some(Self {
            id: FileId {
                dev: libc::makedev(major as u32, minor as u32),
                ino,
            },
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_executable_file_mappings() {
        let m = Mapping::parse(
            "7f2b4e600000-7f2b4e69a000 r-xp 00022000 fe:01 1835029                    \
             /usr/lib/x86_64-linux-gnu/libssl.so.3",
        )
        .unwrap();
        assert_eq!(m.path, "/usr/lib/x86_64-linux-gnu/libssl.so.3");
        assert_eq!(m.id.ino, 1835029);
        assert_eq!(m.id.dev, libc::makedev(0xfe, 1));
        for line in [
            "7f2b4e600000-7f2b4e69a000 r--p 00000000 fe:01 1835029 /usr/lib/libssl.so.3",
            "7ffd1e5f0000-7ffd1e612000 rw-p 00000000 00:00 0                          [stack]",
            "7f2b4e600000-7f2b4e69a000 r-xp 00000000 00:00 0 ",
            "7f2b4e600000-7f2b4e69a000 r-xp 00000000 fe:01 77 /tmp/libssl.so.3 (deleted)",
        ] {
            assert!(Mapping::parse(line).is_none(), "{line}");
        }
        assert!(is_tls_library_name("libssl.so.3"));
        assert!(is_tls_library_name("libssl-1b2c3d4e.so.3"));
        assert!(is_tls_library_name("libgnutls.so.30"));
        assert!(!is_tls_library_name("libcrypto.so.3"));
        assert!(!is_tls_library_name("libssl_helper.a"));
    }

    /// The host's OpenSSL, when it has one: its write functions are found by symbol.
    #[test]
    fn finds_the_write_functions_of_the_system_openssl() {
        let Some(path) = [
            "/lib/x86_64-linux-gnu/libssl.so.3",
            "/usr/lib64/libssl.so.3",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists()) else {
            eprintln!("SKIPPED: no libssl.so.3 on this machine");
            return;
        };
        let (functions, go) = write_functions(&File::open(path).unwrap());
        let names: Vec<&str> = functions.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["SSL_write", "SSL_write_ex"]);
        // The table walked by hand gives the offsets `object`'s symbols give.
        let file = File::open(path).unwrap();
        let cache = ReadCache::new(&file);
        let elf = object::File::parse(&cache).unwrap();
        for (name, offset) in &functions {
            let symbol = elf
                .dynamic_symbols()
                .find(|s| s.name() == Ok(*name))
                .unwrap();
            let section = elf
                .section_by_index(symbol.section_index().unwrap())
                .unwrap();
            let expected = symbol.address() - section.address() + section.file_range().unwrap().0;
            assert_eq!(*offset, expected, "{name}");
        }
        assert!(!go);
        let (functions, _) = write_functions(&File::open("/bin/sh").unwrap());
        assert!(functions.is_empty());
    }
}
