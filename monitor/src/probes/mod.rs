//! Loading the kernel programs and attaching them, from a table of hooks with fallbacks: each
//! purpose is served by the first hook this kernel allows, and the `ready` record says which.
mod credential;

use std::{fs::File, path::Path};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, ProgramError,
        RawTracePoint,
    },
};
use monitor_common::{FileKey, counter};
use thiserror::Error;

use crate::{
    btf::Btf,
    kernel_layout,
    preflight::{BTF_PATH, Environment},
    record::HookReport,
};

static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/keytrail"));

#[derive(Debug, Error)]
pub enum ProbeError {
    /// The kernel's BTF could not be read.
    #[error(transparent)]
    Btf(#[from] crate::btf::BtfError),
    /// The kernel refused the object as a whole (maps or globals).
    #[error("loading keytrail's kernel programs failed: {0}")]
    Load(#[from] EbpfError),
    /// A hook with no fallback could not be loaded or attached.
    #[error("attaching {hook} failed: {source}; keytrail cannot run without it")]
    Attach {
        hook: String,
        #[source]
        source: ProgramError,
    },
    /// A map the daemon needs is missing from the object (a build mismatch).
    #[error("the kernel programs have no map {0}: rebuild keytrail")]
    MissingMap(&'static str),
    #[error("opening a kernel map failed: {0}")]
    Map(#[from] MapError),
    /// The cgroup2 root could not be opened for the connect hooks.
    #[error("cannot open the cgroup2 root {path}: {source}")]
    Cgroup {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The maps the daemon reads and writes while it runs.
pub struct Maps {
    pub events: RingBuf<MapData>,
    pub watched: HashMap<MapData, FileKey, u32>,
    pub counters: Counters,
}

/// The kernel's per-CPU counters (`monitor_common::counter`).
pub struct Counters(PerCpuArray<MapData, u64>);

impl Counters {
    /// Sum over CPUs of one counter.
    pub fn get(&self, index: u32) -> u64 {
        self.0
            .get(&index, 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
    }

    pub fn ringbuf_full(&self) -> u64 {
        self.get(counter::RINGBUF_FULL)
    }
}

/// The loaded programs; dropping this detaches every hook.
pub struct Probes {
    ebpf: Ebpf,
    pub hooks: Vec<HookReport>,
    /// Whether opens on page-cache-less filesystems need the syscall fallback, and if so
    /// whether it is attached yet.
    open_fallback: Option<bool>,
    lsm_refusal: Option<String>,
}

const PROCESS_HOOKS: &[(&str, &str)] = &[
    ("keytrail_exec", "sched_process_exec"),
    ("keytrail_fork", "sched_process_fork"),
    ("keytrail_exit", "sched_process_exit"),
];
const CONNECT_HOOKS: &[(&str, &str)] = &[
    ("keytrail_connect4", "connect4"),
    ("keytrail_connect6", "connect6"),
    ("keytrail_sendmsg4", "sendmsg4"),
    ("keytrail_sendmsg6", "sendmsg6"),
];
/// (program, attach type, hook name, what it names endpoints by)
const PACKET_HOOKS: &[(&str, CgroupSkbAttachType, &str, &str)] = &[
    (
        "keytrail_dns_answer",
        CgroupSkbAttachType::Ingress,
        "cgroup_skb/ingress",
        "DNS answers",
    ),
    (
        "keytrail_tls_hello",
        CgroupSkbAttachType::Egress,
        "cgroup_skb/egress",
        "TLS server names",
    ),
];

fn report(purpose: &'static str, hook: String) -> HookReport {
    HookReport {
        purpose: purpose.to_owned(),
        hook,
        instead_of: None,
        note: None,
    }
}

fn attach_error(hook: String) -> impl FnOnce(ProgramError) -> ProbeError {
    move |source| ProbeError::Attach { hook, source }
}

impl Probes {
    pub fn load(env: &Environment) -> Result<(Self, Maps), ProbeError> {
        let btf = Btf::from_file(Path::new(BTF_PATH))?;
        let (mut offsets, missing) = kernel_layout::offsets_from_btf(&btf);
        if !missing.is_empty() {
            log::warn!(
                "kernel structures without these members, reported as unknown: {}",
                missing.join(", ")
            );
        }
        let filemap = kernel_layout::tracepoint_field_offsets(
            &env.tracefs,
            "filemap",
            "mm_filemap_get_pages",
        );
        if let Some((ino, dev)) = filemap {
            (offsets.filemap_ino, offsets.filemap_dev) = (ino, dev);
        }
        let self_tgid = std::process::id();
        let mut ebpf = EbpfLoader::new()
            .override_global("OFFSETS", &offsets, true)
            .override_global("SELF_TGID", &self_tgid, true)
            .load(PROGRAMS)?;

        let maps = Maps {
            events: RingBuf::try_from(take(&mut ebpf, "EVENTS")?)?,
            watched: HashMap::try_from(take(&mut ebpf, "WATCHED")?)?,
            counters: Counters(PerCpuArray::try_from(take(&mut ebpf, "COUNTERS")?)?),
        };
        let mut probes = Self {
            ebpf,
            hooks: Vec::new(),
            open_fallback: None,
            lsm_refusal: None,
        };
        probes.attach_process()?;
        probes.attach_connect(&env.cgroup2)?;
        probes.attach_packets(&env.cgroup2);
        // Parsed once for both, and dropped once they are attached.
        let kernel_btf = aya::Btf::from_sys_fs();
        probes.attach_credential_read(&kernel_btf, filemap.is_some());
        probes.attach_credential_open(&kernel_btf);
        drop(kernel_btf);
        if !probes.hooks.iter().any(|h| h.purpose == "credential-read") {
            // Older kernels (before 6.x) have no filemap tracepoints: opens are all there is,
            // so the open hook is needed for every credential, not only those on tmpfs.
            probes.ensure_open_hook();
        }
        Ok((probes, maps))
    }

    fn raw_tracepoint(&mut self, program: &str) -> Result<&mut RawTracePoint, ProgramError> {
        let p: &mut RawTracePoint = self
            .ebpf
            .program_mut(program)
            .ok_or(ProgramError::NotLoaded)?
            .try_into()?;
        Ok(p)
    }

    fn attach_process(&mut self) -> Result<(), ProbeError> {
        for (program, tracepoint) in PROCESS_HOOKS {
            let hook = format!("raw_tp/{tracepoint}");
            let p = self
                .raw_tracepoint(program)
                .map_err(attach_error(hook.clone()))?;
            p.load().map_err(attach_error(hook.clone()))?;
            p.attach(tracepoint).map_err(attach_error(hook.clone()))?;
            self.hooks.push(report("process", hook));
        }
        Ok(())
    }

    fn attach_connect(&mut self, cgroup2: &Path) -> Result<(), ProbeError> {
        let root = File::open(cgroup2).map_err(|source| ProbeError::Cgroup {
            path: cgroup2.display().to_string(),
            source,
        })?;
        for (program, attach) in CONNECT_HOOKS {
            let hook = format!("cgroup_sock_addr/{attach}");
            let p: &mut CgroupSockAddr = self
                .ebpf
                .program_mut(program)
                .ok_or(ProgramError::NotLoaded)
                .and_then(|p| p.try_into())
                .map_err(attach_error(hook.clone()))?;
            p.load().map_err(attach_error(hook.clone()))?;
            // Single: the mode this kernel accepts on the root cgroup (see PLATFORM.md).
            p.attach(&root, CgroupAttachMode::Single)
                .map_err(attach_error(hook.clone()))?;
            self.hooks.push(report("connect", hook));
        }
        Ok(())
    }

    /// DNS answers and TLS ClientHellos, which name endpoints. Without them endpoints have
    /// addresses only; keytrail runs on.
    fn attach_packets(&mut self, cgroup2: &Path) {
        let root = File::open(cgroup2);
        for (program, attach_type, hook, names_by) in PACKET_HOOKS {
            let result = match &root {
                Ok(root) => self.attach_cgroup_skb(program, root, *attach_type),
                Err(e) => Err(ProgramError::IOError(std::io::Error::new(
                    e.kind(),
                    e.to_string(),
                ))),
            };
            match result {
                Ok(()) => self.hooks.push(report("endpoint-names", (*hook).into())),
                Err(e) => {
                    log::warn!("{hook} unavailable ({e}): endpoints are not named by {names_by}")
                }
            }
        }
    }

    fn attach_cgroup_skb(
        &mut self,
        program: &str,
        root: &File,
        attach_type: CgroupSkbAttachType,
    ) -> Result<(), ProgramError> {
        let p: &mut CgroupSkb = self
            .ebpf
            .program_mut(program)
            .ok_or(ProgramError::NotLoaded)?
            .try_into()?;
        p.load()?;
        p.attach(root, attach_type, CgroupAttachMode::Single)?;
        Ok(())
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))
}
