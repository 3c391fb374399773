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
}

impl Purpose {
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Process => "process",
            Purpose::Connect => "connect",
            Purpose::EndpointNames => "endpoint-names",
            Purpose::CredentialRead => "credential-read",
            Purpose::CredentialOpen => "credential-open",
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
    /// A cgroup sock_addr hook on the cgroup2 root (the hook is the program's section).
    CgroupSockAddr(&'static str),
    /// A cgroup skb hook on the cgroup2 root.
    CgroupSkb(CgroupSkbAttachType),
}

impl Attach {
    /// The hook as `ready` names it, e.g. `tp_btf/mm_filemap_get_pages`.
    pub fn hook(self) -> String {
        match self {
            Attach::RawTracepoint(name) => format!("raw_tp/{name}"),
            Attach::BtfTracepoint(name) => format!("tp_btf/{name}"),
            Attach::Tracepoint { category, name } => format!("tracepoint/{category}/{name}"),
            Attach::Lsm(name) => format!("lsm/{name}"),
            Attach::CgroupSockAddr(name) => format!("cgroup_sock_addr/{name}"),
            Attach::CgroupSkb(CgroupSkbAttachType::Ingress) => "cgroup_skb/ingress".into(),
            Attach::CgroupSkb(CgroupSkbAttachType::Egress) => "cgroup_skb/egress".into(),
        }
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

/// What to attach when a probe is refused.
#[derive(Clone, Copy, Debug)]
pub enum Fallback {
    None,
    /// These, at once.
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
    Probe {
        without: "endpoints are not named by DNS answers",
        ..probe(
            Purpose::EndpointNames,
            program::DNS_ANSWER,
            Attach::CgroupSkb(CgroupSkbAttachType::Ingress),
        )
    },
    Probe {
        without: "endpoints are not named by TLS server names",
        ..probe(
            Purpose::EndpointNames,
            program::TLS_HELLO,
            Attach::CgroupSkb(CgroupSkbAttachType::Egress),
        )
    },
    // Reads through the page cache run on every buffered read on the machine, so the cheaper
    // form comes first: tp_btf reads typed arguments with plain loads, where a classic
    // tracepoint fills a record per hit that is read with helper calls.
    Probe {
        since: "6.11",
        fallback: Fallback::Now(&[filemap_classic(
            program::FILEMAP_READ,
            "mm_filemap_get_pages",
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
        fallback: Fallback::Now(&[filemap_classic(program::FILEMAP_FAULT, "mm_filemap_fault")]),
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
        fallback: Fallback::WhenNeeded(&OPEN_EXIT),
        without: "opens on tmpfs are not seen",
        ..probe(
            Purpose::CredentialOpen,
            program::FILE_OPEN,
            Attach::Lsm("file_open"),
        )
    },
];

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

const fn filemap_classic(program: &'static str, name: &'static str) -> Probe {
    Probe {
        since: "6.11",
        needs: Needs::FilemapFormat,
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
