//! Types that cross the kernel/user boundary: ring-buffer events, map keys and the load-time
//! configuration of the kernel programs.
//!
//! Every type is `#[repr(C)]` with explicit padding fields and no `bool`, so that the byte layout
//! is the same for the BPF target and the host, and every byte the kernel copies out is defined.
#![no_std]

/// Length of a task's `comm`, as in the kernel.
pub const COMM_LEN: usize = 16;
/// Bytes of the exec'd file name kept per exec event.
pub const FILENAME_LEN: usize = 256;
/// Bytes of argv (NUL-separated) kept per exec event.
pub const ARGV_LEN: usize = 256;
/// Bytes of the environment (NUL-separated `NAME=value`) kept per exec event. A longer
/// environment is kept as its first and last halves: labels set just before exec are appended
/// at the end, variables exported by a shell profile sit at the start.
pub const ENV_LEN: usize = 8192;
pub const ENV_HALF: usize = ENV_LEN / 2;
/// Bytes of a packet's payload kept per DNS answer or TLS ClientHello segment. A power of two:
/// the kernel program masks lengths with it, which is how the verifier sees them bounded. It
/// covers EDNS answers up to the 1232 bytes resolvers advertise and one full-sized TCP segment.
pub const PAYLOAD_LEN: usize = 2048;
/// TCP segments of a connection's first bytes the kernel reports (a ClientHello with large key
/// shares spans two on a 1500-byte MTU).
pub const TLS_SEGMENTS: u32 = 2;
/// Writes into one TLS connection reported, at most: a request head may come in two (HTTP/2's
/// connection preface and settings, then the request's headers; an HTTP/1 client that retries
/// with credentials after a 401 on the same connection).
pub const TLS_WRITES: u32 = 4;
/// Port of DNS servers: sockets that send to it are watched for answers.
pub const DNS_PORT: u16 = 53;

/// Kinds of kernel events. The numbers are stable and grouped by domain:
/// 1x process lifecycle, 2x files, 3x network.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Exec = 10,
    Fork = 11,
    Exit = 12,
    FileAccess = 20,
    Connect = 30,
    /// A DNS message received by a socket that sent to port 53.
    DnsAnswer = 31,
    /// The first bytes a TCP connection sent, when they start a TLS handshake.
    TlsHello = 32,
    /// A DNS message sent to port 53: the query an answer must match.
    DnsQuery = 33,
    /// The first bytes a TCP connection sent, when they start a plain HTTP request: the
    /// request head, whose credentials prove a use.
    HttpRequest = 34,
    /// The first bytes a process wrote into a TLS connection, before encryption (proof of use
    /// over TLS): one event per write, up to `TLS_WRITES` per connection.
    TlsPlaintext = 35,
}

impl EventKind {
    pub fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            10 => Self::Exec,
            11 => Self::Fork,
            12 => Self::Exit,
            20 => Self::FileAccess,
            30 => Self::Connect,
            31 => Self::DnsAnswer,
            32 => Self::TlsHello,
            33 => Self::DnsQuery,
            34 => Self::HttpRequest,
            35 => Self::TlsPlaintext,
            _ => return None,
        })
    }
}

/// First bytes of every event, so the decoder knows the kind before it reads the body.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    pub kind: u32,
    /// Process id (thread-group id) the event is about.
    pub tgid: u32,
    /// `bpf_ktime_get_boot_ns()` at the event: nanoseconds since boot, suspend included.
    pub boot_ns: u64,
}

/// A task finished `execve`: the new program image of process `header.tgid`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// `task->loginuid`: the user who logged in; `u32::MAX` when unset or unknown.
    pub loginuid: u32,
    pub sessionid: u32,
    /// Bytes of `argv` that are valid (NUL-separated arguments).
    pub argv_len: u32,
    /// `task->start_boottime`, the process start that /proc/PID/stat reports (in ticks).
    pub start_boot_ns: u64,
    /// Bytes of `env` that are valid.
    pub env_len: u32,
    /// When the environment was longer than `ENV_LEN`: where its last half starts in `env`
    /// (the variables cut at either side are partial). 0 when `env` holds all of it.
    pub env_cut: u32,
    /// Owner of the executed file (`bprm->file`'s inode, symlinks resolved); `u32::MAX` when
    /// unknown.
    pub exe_uid: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
    pub filename: [u8; FILENAME_LEN],
    pub argv: [u8; ARGV_LEN],
    /// Secret values pass through here on their way to be fingerprinted: userspace never
    /// keeps, logs or prints them.
    pub env: [u8; ENV_LEN],
}

/// A new process (not a thread) was forked: `header.tgid` is the child.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub ppid: u32,
    pub _pad: u32,
    pub start_boot_ns: u64,
}

/// The thread-group leader of `header.tgid` exited.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    pub header: EventHeader,
}

/// How a watched file was reached; which hook saw it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessHook {
    /// A buffered read (read, pread, readv, splice, sendfile, io_uring).
    Read = 1,
    /// A page fault or fault-around on a mapping of the file (mmap).
    Mmap = 2,
    /// An open of the file (LSM file_open, or the openat exit on filesystems without a page cache).
    Open = 3,
    /// A rename or hard link of the file, reported only when read denial refuses it (it would
    /// take the file out of the catalog's paths).
    Move = 4,
}

/// The first access of process `header.tgid` to a watched file.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileAccessEvent {
    pub header: EventHeader,
    pub key: FileKey,
    /// An [`AccessHook`].
    pub hook: u32,
    pub uid: u32,
    pub comm: [u8; COMM_LEN],
    /// What read denial decided of this open ([`decision`]): only `lsm/file_open` refuses.
    pub decision: u32,
    pub _pad: u32,
}

/// An outbound connect (TCP or UDP) or the first unconnected UDP send to an address.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectEvent {
    pub header: EventHeader,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub protocol: u16,
    /// Host byte order.
    pub port: u16,
    /// What enforcement decided (`decision::*`).
    pub decision: u16,
    pub uid: u32,
    /// IPv4 in the first 4 bytes, or the IPv6 address; network byte order.
    pub addr: [u8; 16],
    pub comm: [u8; COMM_LEN],
    pub _pad2: u32,
    /// The socket's cookie (`bpf_get_socket_cookie`): DNS answers and TLS hellos on the same
    /// socket carry it too.
    pub cookie: u64,
}

/// Transport payload of one packet on a watched socket: a DNS answer (`EventKind::DnsAnswer`,
/// `header.tgid` the process that asked, 0 when unknown), a DNS query (`EventKind::DnsQuery`,
/// likewise) or the start of a TLS handshake (`EventKind::TlsHello`, `header.tgid` the process
/// that connected). Also one write into a TLS connection before encryption
/// (`EventKind::TlsPlaintext`, `header.tgid` the writer, `seq` the write's index in the
/// connection, no `peer`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PayloadEvent {
    pub header: EventHeader,
    pub cookie: u64,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub protocol: u16,
    /// Of `peer`: AF_INET or AF_INET6.
    pub family: u16,
    /// TCP sequence number of the first payload byte (0 for UDP): orders and de-duplicates
    /// segments of one stream.
    pub seq: u32,
    /// Payload bytes the packet carried; more than `len` when it did not fit in `data`.
    pub total_len: u32,
    /// Bytes of `data` that are valid.
    pub len: u32,
    /// The other end: the server an answer came from, or a query or hello went to. IPv4 in
    /// the first 4 bytes, or the IPv6 address; network byte order.
    pub peer: [u8; 16],
    pub data: [u8; PAYLOAD_LEN],
}

/// Identity of a file as the kernel sees it: `s_dev` in the kernel's encoding (major << 20 | minor)
/// and the inode number. Every path to the file leads to the same key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}

impl FileKey {
    pub const fn new(dev: u32, ino: u64) -> Self {
        Self { dev, _pad: 0, ino }
    }
}

/// Key of the in-kernel "already reported" LRU: one report per process and file. A process is
/// its tgid and its start time (the thread-group leader's `start_boottime`), as the daemon's
/// tracker knows it, so a reused pid is a new key and nothing needs deleting when a process
/// exits: its entries age out of the LRU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeenKey {
    pub tgid: u32,
    pub _pad: u32,
    pub start_boot_ns: u64,
    pub file: FileKey,
}

/// Key of the in-kernel UDP send dedup: one report per process, address and port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpKey {
    pub tgid: u32,
    pub port: u16,
    pub family: u16,
    pub addr: [u8; 16],
}

/// What enforcement decided about a connect (`ConnectEvent::decision`).
pub mod decision {
    /// Nothing to decide: enforcement off, or the process holds no enforced credential, or the
    /// endpoint is in the scope of one it holds.
    pub const ALLOWED: u16 = 0;
    /// Refused (the process got EPERM).
    pub const DENIED: u16 = 1;
    /// Would have been refused; let through (dry run).
    pub const WOULD_DENY: u16 = 2;
    /// Set beside `DENIED` or `WOULD_DENY` of a connect: the refusal was for the context the
    /// process acts in (`cross-context-reuse`), not for the endpoint's scope.
    pub const BY_CONTEXT: u16 = 0x10;
    /// The decision without its reason.
    pub const fn outcome(decision: u16) -> u16 {
        decision & 0x0f
    }
}

/// What the kernel refuses under one generation of the plan (`PLAN`): the daemon writes the
/// generation not in force, and the watched map's half for it, then makes it the one in force
/// with one 4-byte write (`PLAN_GEN`), so a program judges by one plan or the next, never by
/// a mix. A slot's own data (ports, address blocks, names, owner) never changes in a run, so
/// it needs no generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanMasks {
    /// `enforce_mode::*`.
    pub mode: u32,
    pub _pad: u32,
    /// Slots whose scopes are refused.
    pub scoped: u64,
    /// Slots whose use in another context is refused.
    pub contexts: u64,
    /// Of those, the slots owned by a context (`CONTEXT_OWNERS` says which).
    pub owned: u64,
}

/// How enforcement runs (`PlanMasks::mode`).
pub mod enforce_mode {
    pub const OFF: u32 = 0;
    pub const DRY_RUN: u32 = 1;
    pub const DENY: u32 = 2;
}

/// The watched map's value: one half (u32) per plan generation, the generation's in the low
/// half for 0 and the high half for 1; each half has the credential's enforcement slot + 1 in
/// its low byte (0: its connects are not enforced), its reader set + 1 in the next (0: its
/// opens are not enforced).
pub mod watched {
    /// The half of `value` generation `generation` reads.
    pub const fn half(value: u64, generation: u32) -> u32 {
        (value >> ((generation & 1) * 32)) as u32
    }

    /// `value` with generation `generation`'s half set to `half`.
    pub const fn with_half(value: u64, generation: u32, half: u32) -> u64 {
        let shift = (generation & 1) * 32;
        (value & !(0xffff_ffffu64 << shift)) | ((half as u64) << shift)
    }

    pub const SLOT_MASK: u32 = 0xff;
    pub const READER_SET_SHIFT: u32 = 8;

    pub const fn value(slot_plus_one: u32, reader_set_plus_one: u32) -> u32 {
        (slot_plus_one & SLOT_MASK) | ((reader_set_plus_one & 0xff) << READER_SET_SHIFT)
    }

    pub const fn slot_plus_one(value: u32) -> u32 {
        value & SLOT_MASK
    }

    pub const fn reader_set_plus_one(value: u32) -> u32 {
        (value >> READER_SET_SHIFT) & 0xff
    }
}

/// Sets of allowed readers the kernel tells apart, at most (credentials whose readers are the
/// same share one); an executable's entry in the readers map is a mask of them.
pub const MAX_READER_SETS: u32 = 64;

/// Scopes the kernel tells apart, at most: a credential's scope is a slot (credentials with the
/// same scope share one), and a process's holdings are a bit mask of slots.
pub const MAX_SLOTS: u32 = 63;
/// The bit of a holder's mask that says its executable is exempt from enforcement.
pub const EXEMPT_BIT: u64 = 1 << 63;
/// Ports a slot lists, at most (more: any port).
pub const SLOT_PORTS: usize = 8;

/// An address with its family, as enforcement's maps key it: the family in the first 4 bytes
/// (big-endian, so an LPM prefix of 32 bits matches the family alone), then IPv4 in the first
/// 4 bytes of the rest or the IPv6 address, network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrKey {
    pub bytes: [u8; 20],
}

impl AddrKey {
    pub fn new(family: u16, addr: [u8; 16]) -> Self {
        let mut bytes = [0u8; 20];
        bytes[2..4].copy_from_slice(&family.to_be_bytes());
        let mut i = 0;
        while i < 16 {
            bytes[4 + i] = addr[i];
            i += 1;
        }
        Self { bytes }
    }
}

/// The ports one slot allows; `count` 0: any.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SlotPorts {
    pub count: u32,
    pub ports: [u16; SLOT_PORTS],
    pub _pad: u32,
}

/// A scope's host name, by hash of its DNS wire form (lower case): `suffix` 0 for the name
/// itself, 1 for any name below it (`*.name`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NameKey {
    pub hash: u64,
    pub suffix: u32,
    pub _pad: u32,
}

/// Powers of the name hash's key kept (`map::NAME_HASH`): a DNS name's wire form is at most
/// 255 bytes.
pub const NAME_HASH_POWERS: u32 = 256;

/// The hash of DNS wire bytes (labels with their length bytes, no final zero), lower-cased:
/// `h = h * key + byte` for each byte, wrapping. The key is random per run (the daemon puts
/// its powers in `map::NAME_HASH`), so nobody can make a name whose hash is a scope name's.
pub const fn name_hash(wire: &[u8], key: u64) -> u64 {
    let mut h = 0u64;
    let mut i = 0;
    while i < wire.len() {
        let b = wire[i];
        let b = if b >= b'A' && b <= b'Z' { b + 32 } else { b };
        h = h.wrapping_mul(key).wrapping_add(b as u64);
        i += 1;
    }
    h
}

/// The hash of a context label's bytes as they are (case counts): `h = h * key + byte`, the
/// key of [`name_hash`]. The kernel hashes the label variable's name and value in a process's
/// environment at exec this way (contexts.rs), and the daemon hashes the variable's name and
/// the contexts that own credentials.
pub const fn label_hash(bytes: &[u8], key: u64) -> u64 {
    let mut h = 0u64;
    let mut i = 0;
    while i < bytes.len() {
        h = h.wrapping_mul(key).wrapping_add(bytes[i] as u64);
        i += 1;
    }
    h
}

/// A process's context as the kernel knows it (`CONTEXTS`): the hash of its context label,
/// and the slots it holds that were read in another context.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcContext {
    /// [`label_hash`] of the label's value; 0 for a process with no label in its lineage,
    /// [`CONTEXT_UNKNOWN`] for one whose environment could not be read.
    pub context: u64,
    /// Slots held from before the exec that gave the process its context.
    pub carried: u64,
}

/// A context no label hashes to (an environment that could not be read): no credential's
/// owner, and unlike every context a process had before.
pub const CONTEXT_UNKNOWN: u64 = u64::MAX;

/// The label variable's name as the kernel looks for it (`CONTEXT_LABEL`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ContextLabel {
    pub hash: u64,
    pub len: u32,
    pub _pad: u32,
}

/// Addresses a trusted resolver gave for a name in some enforced scope: the slots they are in,
/// and until when (boot ns).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Learned {
    pub mask: u64,
    pub expires_ns: u64,
}

/// An offset the daemon did not find; the programs then report that field as unknown.
/// (Not 0: some members keytrail reads sit at offset 0, such as `fdtable.max_fds`.)
pub const UNKNOWN_OFFSET: u32 = u32::MAX;

/// Kernel struct member offsets, read from BTF in userspace and set as a load-time global,
/// because aya-ebpf has no CO-RE relocations. [`UNKNOWN_OFFSET`] marks a member not found.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_start_boottime: u32,
    pub task_loginuid: u32,
    pub task_sessionid: u32,
    pub task_mm: u32,
    pub task_files: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub mm_env_start: u32,
    pub mm_env_end: u32,
    pub bprm_filename: u32,
    pub bprm_file: u32,
    pub inode_uid: u32,
    pub files_fdt: u32,
    pub fdt_fd: u32,
    pub fdt_max_fds: u32,
    pub file_inode: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    pub mapping_host: u32,
    /// `struct sock_common`: the socket's cookie (set once a BPF program asked for it; the
    /// connect hooks do) and its address family.
    pub sock_cookie: u32,
    pub sock_family: u32,
    /// `task_struct.signal` and `signal_struct.live`: the threads of a group still running.
    pub task_signal: u32,
    pub signal_live: u32,
    /// `mm_struct.exe_file`: the executable a process runs (read denial checks it).
    pub mm_exe_file: u32,
    /// `task_struct.ptrace`: nonzero while a tracer is attached (read denial refuses then).
    pub task_ptrace: u32,
    /// `dentry.d_inode`: the file a rename or link moves (read denial judges it).
    pub dentry_inode: u32,
    /// Offsets of `i_ino` and `s_dev` in the filemap:* tracepoint records (from tracefs format).
    pub filemap_ino: u32,
    pub filemap_dev: u32,
}

impl KernelOffsets {
    /// All offsets unknown: the value the kernel programs are compiled with.
    pub const UNKNOWN: Self = Self {
        task_pid: UNKNOWN_OFFSET,
        task_tgid: UNKNOWN_OFFSET,
        task_real_parent: UNKNOWN_OFFSET,
        task_group_leader: UNKNOWN_OFFSET,
        task_start_boottime: UNKNOWN_OFFSET,
        task_loginuid: UNKNOWN_OFFSET,
        task_sessionid: UNKNOWN_OFFSET,
        task_mm: UNKNOWN_OFFSET,
        task_files: UNKNOWN_OFFSET,
        mm_arg_start: UNKNOWN_OFFSET,
        mm_arg_end: UNKNOWN_OFFSET,
        mm_env_start: UNKNOWN_OFFSET,
        mm_env_end: UNKNOWN_OFFSET,
        bprm_filename: UNKNOWN_OFFSET,
        bprm_file: UNKNOWN_OFFSET,
        inode_uid: UNKNOWN_OFFSET,
        files_fdt: UNKNOWN_OFFSET,
        fdt_fd: UNKNOWN_OFFSET,
        fdt_max_fds: UNKNOWN_OFFSET,
        file_inode: UNKNOWN_OFFSET,
        inode_ino: UNKNOWN_OFFSET,
        inode_sb: UNKNOWN_OFFSET,
        sb_dev: UNKNOWN_OFFSET,
        mapping_host: UNKNOWN_OFFSET,
        sock_cookie: UNKNOWN_OFFSET,
        sock_family: UNKNOWN_OFFSET,
        task_signal: UNKNOWN_OFFSET,
        signal_live: UNKNOWN_OFFSET,
        mm_exe_file: UNKNOWN_OFFSET,
        task_ptrace: UNKNOWN_OFFSET,
        dentry_inode: UNKNOWN_OFFSET,
        filemap_ino: UNKNOWN_OFFSET,
        filemap_dev: UNKNOWN_OFFSET,
    };
}

/// Indexes of the per-CPU counters array.
pub mod counter {
    /// Events lost because the ring buffer was full.
    pub const RINGBUF_FULL: u32 = 0;
    /// Kernel reads that failed (a field left unknown).
    pub const READ_FAILED: u32 = 1;
    /// Packets on watched sockets whose headers could not be parsed (IP options past what is
    /// read, IPv6 extension headers, fragments): their payload was not reported.
    pub const PACKET_UNPARSED: u32 = 2;
    /// Of `RINGBUF_FULL`: lost because the ring of credential accesses and connects was full.
    pub const CRITICAL_FULL: u32 = 3;
    /// DNS answers over UDP to a socket with no query outstanding: not reported (a flood of
    /// them cannot fill the ring, and could not have answered anything).
    pub const DNS_UNSOLICITED: u32 = 4;
    /// Connects sent to the bulk ring instead of the critical one: their user had spent its
    /// budget there (a flood of connects).
    pub const CRITICAL_DEMOTED: u32 = 5;
    /// Socket marks the kernel failed to insert (the table refused the insert): that socket's
    /// DNS answers, TLS server names and TLS writes were not read.
    pub const SOCKETS_UNMARKED: u32 = 6;
    pub const COUNT: u32 = 7;
}

/// The names of the kernel programs, as the daemon finds them in the object. The kernel side
/// names each program by its function, so these must match those names: a test of the daemon
/// checks every one against the built object.
pub mod program {
    pub const EXEC: &str = "keytrail_exec";
    pub const FORK: &str = "keytrail_fork";
    pub const EXIT: &str = "keytrail_exit";
    pub const CONNECT4: &str = "keytrail_connect4";
    pub const CONNECT6: &str = "keytrail_connect6";
    pub const SENDMSG4: &str = "keytrail_sendmsg4";
    pub const SENDMSG6: &str = "keytrail_sendmsg6";
    pub const DNS_ANSWER: &str = "keytrail_dns_answer";
    pub const EGRESS: &str = "keytrail_egress";
    pub const SOCK_RELEASE: &str = "keytrail_sock_release";
    pub const FILEMAP_READ_BTF: &str = "keytrail_filemap_read_btf";
    pub const FILEMAP_FAULT_BTF: &str = "keytrail_filemap_fault_btf";
    pub const FILEMAP_MAP_PAGES_BTF: &str = "keytrail_filemap_map_pages_btf";
    pub const FILEMAP_READ: &str = "keytrail_filemap_read";
    pub const FILEMAP_FAULT: &str = "keytrail_filemap_fault";
    pub const FILEMAP_MAP_PAGES: &str = "keytrail_filemap_map_pages";
    pub const FILE_OPEN: &str = "keytrail_file_open";
    pub const INODE_RENAME: &str = "keytrail_inode_rename";
    pub const INODE_LINK: &str = "keytrail_inode_link";
    pub const OPEN_EXIT: &str = "keytrail_open_exit";
    pub const FILE_OPEN_FENTRY: &str = "keytrail_file_open_fentry";
    pub const FILE_READ_FENTRY: &str = "keytrail_file_read_fentry";
    pub const FILE_MMAP_FENTRY: &str = "keytrail_file_mmap_fentry";
    pub const FILE_OPEN_KPROBE: &str = "keytrail_file_open_kprobe";
    pub const FILE_READ_KPROBE: &str = "keytrail_file_read_kprobe";
    pub const FILE_MMAP_KPROBE: &str = "keytrail_file_mmap_kprobe";
    pub const TLS_WRITE: &str = "keytrail_tls_write";
    pub const TLS_SEND_BTF: &str = "keytrail_tls_send_btf";
    pub const TLS_SEND_KPROBE: &str = "keytrail_tls_send_kprobe";
    pub const EXEC_CONTEXT: &str = "keytrail_exec_context";
    pub const ENV_SCAN: &str = "keytrail_env_scan";
}

/// The names of the maps and load-time globals the daemon uses; the kernel side declares them
/// under these names (checked by the same test).
pub mod map {
    pub const EVENTS: &str = "EVENTS";
    pub const CRITICAL: &str = "CRITICAL";
    pub const WATCHED: &str = "WATCHED";
    pub const COUNTERS: &str = "COUNTERS";
    pub const OFFSETS: &str = "OFFSETS";
    pub const SELF_TGID: &str = "SELF_TGID";
    pub const PLAN: &str = "PLAN";
    pub const PLAN_GEN: &str = "PLAN_GEN";
    pub const HOLDERS: &str = "HOLDERS";
    pub const SLOT_PORTS: &str = "SLOT_PORTS";
    pub const ANY_ADDRESS: &str = "ANY_ADDRESS";
    pub const SCOPE_CIDRS: &str = "SCOPE_CIDRS";
    pub const SCOPE_NAMES: &str = "SCOPE_NAMES";
    pub const LEARNED: &str = "LEARNED";
    pub const TRUSTED_RESOLVERS: &str = "TRUSTED_RESOLVERS";
    pub const EXEMPT_EXES: &str = "EXEMPT_EXES";
    pub const NAME_HASH: &str = "NAME_HASH";
    pub const READERS: &str = "READERS";
    pub const CONTEXT_OWNERS: &str = "CONTEXT_OWNERS";
    pub const CONTEXTS: &str = "CONTEXTS";
    pub const CONTEXT_LABEL: &str = "CONTEXT_LABEL";
    pub const ENV_SCAN_NEXT: &str = "ENV_SCAN_NEXT";
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), made of integers and integer arrays, with explicit padding.
    unsafe impl aya::Pod for FileKey {}
    unsafe impl aya::Pod for SeenKey {}
    unsafe impl aya::Pod for UdpKey {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for AddrKey {}
    unsafe impl aya::Pod for SlotPorts {}
    unsafe impl aya::Pod for NameKey {}
    unsafe impl aya::Pod for Learned {}
    unsafe impl aya::Pod for ProcContext {}
    unsafe impl aya::Pod for ContextLabel {}
    unsafe impl aya::Pod for PlanMasks {}
}
