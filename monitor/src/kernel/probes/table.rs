//! The probe table: every hook keytrail can use, what it is for, and what to try when the kernel
//! refuses it. `Probes::load` walks it in order; nothing else decides what is attached.
use aya::programs::CgroupSkbAttachType;
use monitor_common::program;

/// What a hook is for; `ready` groups hooks by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Process,
    Connect,
    EndpointNames,
    CredentialRead,
    CredentialOpen,
    /// Renames and links of credentials whose opens are refused (read denial).
    CredentialMove,
    /// The send that follows a TLS write: says which connection the write's bytes go to.
    Proof,
}

impl Purpose {
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Process => "process",
            Purpose::Connect => "connect",
            Purpose::EndpointNames => "endpoint-names",
            Purpose::CredentialRead => "credential-read",
            Purpose::CredentialOpen => "credential-open",
            Purpose::CredentialMove => "credential-move",
            Purpose::Proof => "proof",
        }
    }
}

/// Where and how a program is attached.
#[derive(Clone, Copy, Debug)]
pub enum Attach {
    /// A raw tracepoint, by name.
    RawTracepoint(&'static str),
    /// A BTF-typed tracepoint (tp_btf), by name.
    BtfTracepoint(&'static str),
    /// A classic tracepoint.
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// A BPF LSM hook, by name.
    Lsm(&'static str),
    /// An fentry program on a kernel function, by name (needs BPF trampolines).
    FEntry(&'static str),
    /// A kprobe on a kernel function, by name.
    KProbe(&'static str),
    /// A cgroup sock_addr hook on the cgroup2 root (the hook is the program's section).
    CgroupSockAddr(&'static str),
    /// A cgroup skb hook on the cgroup2 root.
    CgroupSkb(CgroupSkbAttachType),
    /// The cgroup hook on the cgroup2 root that runs as an inet socket is released.
    CgroupSockRelease,
    /// Uprobes on user-space functions, set per file as files are found (never from the
    /// table: `Probes::hook_tls_writes`).
    UProbe,
}

impl Attach {
    /// Every kind of hook, as `--skip-hooks` and `ready` name them.
    pub const KINDS: &[&str] = &[
        "raw_tp",
        "tp_btf",
        "tracepoint",
        "lsm",
        "fentry",
        "kprobe",
        "cgroup_sock_addr",
        "cgroup_skb",
        "uprobe",
    ];

    /// The kind of hook: the part of its name before the slash.
    pub fn kind(self) -> &'static str {
        match self {
            Attach::RawTracepoint(_) => "raw_tp",
            Attach::BtfTracepoint(_) => "tp_btf",
            Attach::Tracepoint { .. } => "tracepoint",
            Attach::Lsm(_) => "lsm",
            Attach::FEntry(_) => "fentry",
            Attach::KProbe(_) => "kprobe",
            Attach::CgroupSockAddr(_) => "cgroup_sock_addr",
            Attach::CgroupSkb(_) => "cgroup_skb",
            Attach::CgroupSockRelease => "cgroup_sock",
            Attach::UProbe => "uprobe",
        }
    }

    /// The hook as `ready` names it, e.g. `tp_btf/mm_filemap_get_pages`.
    pub fn hook(self) -> String {
        let name = match self {
            Attach::RawTracepoint(name)
            | Attach::BtfTracepoint(name)
            | Attach::Lsm(name)
            | Attach::FEntry(name)
            | Attach::KProbe(name)
            | Attach::CgroupSockAddr(name) => name.to_owned(),
            Attach::Tracepoint { category, name } => format!("{category}/{name}"),
            Attach::CgroupSkb(CgroupSkbAttachType::Ingress) => "ingress".into(),
            Attach::CgroupSkb(CgroupSkbAttachType::Egress) => "egress".into(),
            Attach::CgroupSockRelease => "sock_release".into(),
            Attach::UProbe => "tls-writes".into(),
        };
        format!("{}/{name}", self.kind())
    }
}

/// What must hold besides the kernel accepting the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// `bpf` among the active LSMs: a BPF LSM program loads and attaches without it, and never
    /// runs.
    ActiveBpfLsm,
    /// The filemap tracepoints' record layout, read from tracefs.
    FilemapFormat,
}

/// What to attach when a probe is refused. A fallback may have fallbacks of its own: the chain
/// is walked until a hook attaches.
#[derive(Clone, Copy, Debug)]
pub enum Fallback {
    None,
    /// These, at once. Several chains may share a fallback; it is attached once.
    Now(&'static [Probe]),
    /// These, but only once something needs them (`Probes::ensure`): the syscall tracepoints
    /// slow every syscall on the machine, so they are attached only while a credential needs
    /// them.
    WhenNeeded(&'static [Probe]),
}

#[derive(Debug)]
pub struct Probe {
    pub purpose: Purpose,
    pub program: &'static str,
    pub attach: Attach,
    /// The first kernel release with the hook (keytrail's own minimum, 5.10, where older), said in
    /// the log when the hook is refused; the kernel decides.
    pub since: &'static str,
    pub needs: Needs,
    /// keytrail does not start without it (and its fallbacks).
    pub required: bool,
    pub fallback: Fallback,
    /// What is lost when neither it nor a fallback could be attached.
    pub without: &'static str,
}

/// Every probe, in the order they are attached: process lifecycle first (the tracker must see
/// every process that later reads or connects), connects, endpoint names, then credentials.
pub static TABLE: &[Probe] = &[
    required(
        Purpose::Process,
        program::EXEC,
        Attach::RawTracepoint("sched_process_exec"),
    ),
    required(
        Purpose::Process,
        program::FORK,
        Attach::RawTracepoint("sched_process_fork"),
    ),
    required(
        Purpose::Process,
        program::EXIT,
        Attach::RawTracepoint("sched_process_exit"),
    ),
    required(
        Purpose::Connect,
        program::CONNECT4,
        Attach::CgroupSockAddr("connect4"),
    ),
    required(
        Purpose::Connect,
        program::CONNECT6,
        Attach::CgroupSockAddr("connect6"),
    ),
    required(
        Purpose::Connect,
        program::SENDMSG4,
        Attach::CgroupSockAddr("sendmsg4"),
    ),
    required(
        Purpose::Connect,
        program::SENDMSG6,
        Attach::CgroupSockAddr("sendmsg6"),
    ),
    // The packet programs and the TLS send hook read what the connect hooks noted on a socket
    // (by cookie) until the socket is released.
    required(
        Purpose::Connect,
        program::SOCK_RELEASE,
        Attach::CgroupSockRelease,
    ),
    Probe {
        without: "endpoints are not named by DNS answers",
        ..probe(
            Purpose::EndpointNames,
            program::DNS_ANSWER,
            Attach::CgroupSkb(CgroupSkbAttachType::Ingress),
        )
    },
    Probe {
        without: "endpoints are not named by TLS server names, and no DNS answer matches a query",
        ..probe(
            Purpose::EndpointNames,
            program::EGRESS,
            Attach::CgroupSkb(CgroupSkbAttachType::Egress),
        )
    },
    // Reads through the page cache run on every buffered read on the machine, so the cheaper
    // form comes first: tp_btf reads typed arguments with plain loads, where a classic
    // tracepoint fills a record per hit that is read with helper calls. Kernels before 6.11
    // have neither, and fall back to the security functions every read and mmap passes.
    Probe {
        since: "6.11",
        fallback: Fallback::Now(&[filemap_classic(
            program::FILEMAP_READ,
            "mm_filemap_get_pages",
            &READ_SECURITY,
        )]),
        without: "credential reads are seen at open only",
        ..probe(
            Purpose::CredentialRead,
            program::FILEMAP_READ_BTF,
            Attach::BtfTracepoint("mm_filemap_get_pages"),
        )
    },
    Probe {
        since: "6.11",
        fallback: Fallback::Now(&[filemap_classic(
            program::FILEMAP_FAULT,
            "mm_filemap_fault",
            &MMAP_SECURITY,
        )]),
        without: "mmap reads are seen at open only",
        ..probe(
            Purpose::CredentialRead,
            program::FILEMAP_FAULT_BTF,
            Attach::BtfTracepoint("mm_filemap_fault"),
        )
    },
    Probe {
        since: "6.11",
        fallback: Fallback::Now(&[filemap_classic(
            program::FILEMAP_MAP_PAGES,
            "mm_filemap_map_pages",
            &MMAP_SECURITY,
        )]),
        without: "mmap reads of cached pages are seen at open only",
        ..probe(
            Purpose::CredentialRead,
            program::FILEMAP_MAP_PAGES_BTF,
            Attach::BtfTracepoint("mm_filemap_map_pages"),
        )
    },
    // Opens: needed for files without a page cache (tmpfs: Kubernetes tokens), and for every
    // credential where no read hook could be attached.
    Probe {
        needs: Needs::ActiveBpfLsm,
        fallback: Fallback::Now(&OPEN_SECURITY),
        without: "opens on tmpfs are not seen",
        ..probe(
            Purpose::CredentialOpen,
            program::FILE_OPEN,
            Attach::Lsm("file_open"),
        )
    },
    // Read denial: a credential whose opens are refused may not be moved or linked out of the
    // catalog's paths either. BPF LSM only: nothing else can refuse.
    Probe {
        needs: Needs::ActiveBpfLsm,
        without: "a credential whose opens are refused can be renamed or linked away",
        ..probe(
            Purpose::CredentialMove,
            program::INODE_RENAME,
            Attach::Lsm("inode_rename"),
        )
    },
    Probe {
        needs: Needs::ActiveBpfLsm,
        without: "a credential whose opens are refused can be linked away",
        ..probe(
            Purpose::CredentialMove,
            program::INODE_LINK,
            Attach::Lsm("inode_link"),
        )
    },
    // Proof of use over TLS: the TLS libraries' write functions are hooked as they are found
    // (uprobes, tls_libraries.rs); this says which connection each write went to. It runs on
    // every socket send on the machine: a tp_btf tracepoint after the send where the kernel
    // has one, else a kprobe on TCP's send.
    Probe {
        since: "6.3",
        fallback: Fallback::Now(&SEND_KPROBE),
        without: "requests sent over TLS are not read: their uses are inferred",
        ..probe(
            Purpose::Proof,
            program::TLS_SEND_BTF,
            Attach::BtfTracepoint("sock_send_length"),
        )
    },
];

static SEND_KPROBE: [Probe; 1] = [kprobe(
    Purpose::Proof,
    program::TLS_SEND_KPROBE,
    "tcp_sendmsg",
    Fallback::None,
)];

const fn probe(purpose: Purpose, program: &'static str, attach: Attach) -> Probe {
    Probe {
        purpose,
        program,
        attach,
        since: "5.10",
        needs: Needs::Nothing,
        required: false,
        fallback: Fallback::None,
        without: "",
    }
}

/// A probe keytrail does not start without.
const fn required(purpose: Purpose, program: &'static str, attach: Attach) -> Probe {
    Probe {
        required: true,
        without: "keytrail cannot run without it",
        ..probe(purpose, program, attach)
    }
}

const fn filemap_classic(
    program: &'static str,
    name: &'static str,
    fallbacks: &'static [Probe],
) -> Probe {
    Probe {
        since: "6.11",
        needs: Needs::FilemapFormat,
        fallback: Fallback::Now(fallbacks),
        ..probe(
            Purpose::CredentialRead,
            program,
            Attach::Tracepoint {
                category: "filemap",
                name,
            },
        )
    }
}

/// fentry on a security function; `kprobes` where the kernel refuses it.
const fn security(
    purpose: Purpose,
    fentry: &'static str,
    kprobes: &'static [Probe],
    function: &'static str,
) -> Probe {
    Probe {
        fallback: Fallback::Now(kprobes),
        ..probe(purpose, fentry, Attach::FEntry(function))
    }
}

/// A kprobe on a kernel function, and what follows when it is refused too.
const fn kprobe(
    purpose: Purpose,
    program: &'static str,
    function: &'static str,
    last: Fallback,
) -> Probe {
    Probe {
        fallback: last,
        ..probe(purpose, program, Attach::KProbe(function))
    }
}

static READ_SECURITY: [Probe; 1] = [security(
    Purpose::CredentialRead,
    program::FILE_READ_FENTRY,
    &READ_KPROBE,
    "security_file_permission",
)];
static READ_KPROBE: [Probe; 1] = [kprobe(
    Purpose::CredentialRead,
    program::FILE_READ_KPROBE,
    "security_file_permission",
    Fallback::None,
)];
static MMAP_SECURITY: [Probe; 1] = [security(
    Purpose::CredentialRead,
    program::FILE_MMAP_FENTRY,
    &MMAP_KPROBE,
    "security_mmap_file",
)];
static MMAP_KPROBE: [Probe; 1] = [kprobe(
    Purpose::CredentialRead,
    program::FILE_MMAP_KPROBE,
    "security_mmap_file",
    Fallback::None,
)];
static OPEN_SECURITY: [Probe; 1] = [security(
    Purpose::CredentialOpen,
    program::FILE_OPEN_FENTRY,
    &OPEN_KPROBE,
    "security_file_open",
)];
/// The syscall tracepoints come last, and only when needed: they slow every syscall.
static OPEN_KPROBE: [Probe; 1] = [kprobe(
    Purpose::CredentialOpen,
    program::FILE_OPEN_KPROBE,
    "security_file_open",
    Fallback::WhenNeeded(&OPEN_EXIT),
)];

static OPEN_EXIT: [Probe; 3] = [
    syscall_exit("sys_exit_openat"),
    syscall_exit("sys_exit_openat2"),
    syscall_exit("sys_exit_open"),
];

const fn syscall_exit(name: &'static str) -> Probe {
    probe(
        Purpose::CredentialOpen,
        program::OPEN_EXIT,
        Attach::Tracepoint {
            category: "syscalls",
            name,
        },
    )
}
