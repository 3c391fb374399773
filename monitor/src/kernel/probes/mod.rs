//! Loading the kernel programs and attaching them from the probe table (table.rs): each purpose
//! is served by the first hook this kernel allows, and the `ready` record says which. One loop
//! attaches every hook; what differs between hooks is data in the table.
mod context_scan;
mod statistics;
mod table;

use std::{
    fs::File,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSock, CgroupSockAddr, FEntry, KProbe,
        Lsm, ProgramError, RawTracePoint, TracePoint, UProbe,
        uprobe::{UProbeAttachLocation, UProbeScope},
    },
};
use monitor_common::{FileKey, counter, map, program};
use thiserror::Error;

pub use self::table::{Attach, Purpose};
use self::table::{Fallback, Needs, Probe, TABLE};
use super::{
    btf::Btf,
    enforcement::EnforcementMaps,
    layout,
    preflight::{BTF_PATH, Environment},
    tls_holders::TlsHolders,
};
use crate::record::HookReport;

static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/keytrail"));

#[derive(Debug, Error)]
pub enum ProbeError {
    /// The kernel's BTF could not be read.
    #[error(transparent)]
    Btf(#[from] super::btf::BtfError),
    /// The kernel refused the object as a whole (maps or globals).
    #[error("loading keytrail's kernel programs failed")]
    Load(#[from] EbpfError),
    /// A hook with no fallback could not be loaded or attached.
    #[error("attaching {hook} failed; keytrail cannot run without it")]
    Attach {
        hook: String,
        #[source]
        source: ProgramError,
    },
    /// A map the daemon needs is missing from the object (a build mismatch).
    #[error("the kernel programs have no map {0}: rebuild keytrail")]
    MissingMap(&'static str),
    #[error("opening a kernel map failed")]
    Map(#[from] MapError),
}

/// The maps the daemon reads and writes while it runs.
pub struct Maps {
    /// Process lifecycle and packets.
    pub events: RingBuf<MapData>,
    /// Credential accesses and connects: a ring of their own, so a flood of the others cannot
    /// push them out.
    pub critical: RingBuf<MapData>,
    pub watched: HashMap<MapData, FileKey, u64>,
    pub counters: Counters,
    pub enforcement: EnforcementMaps,
    /// Read denial's allowed readers: a mask of reader sets by executable.
    pub readers: HashMap<MapData, FileKey, u64>,
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

    /// Of `ringbuf_full`: lost from the ring of credential accesses and connects.
    pub fn critical_full(&self) -> u64 {
        self.get(counter::CRITICAL_FULL)
    }
}

/// What attaching needs from the machine, gathered once at load.
struct Machine {
    cgroup2: PathBuf,
    /// The kernel's BTF as aya parses it, for the hooks attached by BTF type (tp_btf, LSM).
    /// Dropped after load: the hooks attached later (syscall tracepoints) need none.
    btf: Option<Result<aya::Btf, aya::BtfError>>,
    filemap_format_known: bool,
    /// Why BPF LSM programs would never run here, if the kernel says so.
    bpf_lsm_inactive: Option<String>,
    /// Why a process's executable cannot be known in the kernel, if it cannot.
    exe_unknown: Option<String>,
    /// Kinds of hook not to use (`--skip-hooks`), as `Attach::kind` names them.
    skip: Vec<&'static str>,
}

/// The loaded programs; dropping this detaches every hook.
pub struct Probes {
    ebpf: Ebpf,
    machine: Machine,
    pub hooks: Vec<HookReport>,
    /// The probes attached, in order (`hooks` in the kernel's terms).
    attached: Vec<&'static Probe>,
    /// Fallbacks to attach once something needs them, with the refusal of the hook they stand
    /// in for.
    deferred: Vec<(&'static Probe, Chain)>,
    /// With TLS writes read from credential holders only: their per-process uprobes.
    tls_holders: Option<TlsHolders>,
}

impl Probes {
    /// Loads the programs and attaches, for each purpose, the first hook in the table the
    /// kernel allows, never one of a kind in `skip`.
    pub fn load(env: &Environment, skip: &[&'static str]) -> Result<(Self, Maps), ProbeError> {
        let btf = Btf::from_file(Path::new(BTF_PATH))?;
        let (mut offsets, missing) = layout::offsets_from_btf(&btf);
        drop(btf);
        if !missing.is_empty() {
            log::warn!(
                "kernel structures without these members, reported as unknown: {}",
                missing.join(", ")
            );
        }
        // Read denial judges a process by `task->mm->exe_file`: without those members it would
        // let every open through while saying it refuses.
        let exe_unknown = [offsets.task_mm, offsets.mm_exe_file]
            .contains(&monitor_common::UNKNOWN_OFFSET)
            .then(|| "the kernel's BTF lacks task_struct.mm or mm_struct.exe_file".to_owned());
        let filemap =
            layout::tracepoint_field_offsets(&env.tracefs, "filemap", "mm_filemap_get_pages");
        if let Some((ino, dev)) = filemap {
            (offsets.filemap_ino, offsets.filemap_dev) = (ino, dev);
        }
        let self_tgid = std::process::id();
        let mut ebpf = EbpfLoader::new()
            .override_global(map::OFFSETS, &offsets, true)
            .override_global(map::SELF_TGID, &self_tgid, true)
            .load(PROGRAMS)?;

        let maps = Maps {
            events: RingBuf::try_from(take(&mut ebpf, map::EVENTS)?)?,
            critical: RingBuf::try_from(take(&mut ebpf, map::CRITICAL)?)?,
            watched: HashMap::try_from(take(&mut ebpf, map::WATCHED)?)?,
            counters: Counters(PerCpuArray::try_from(take(&mut ebpf, map::COUNTERS)?)?),
            enforcement: EnforcementMaps {
                plan: Array::try_from(take(&mut ebpf, map::PLAN)?)?,
                generation: Array::try_from(take(&mut ebpf, map::PLAN_GEN)?)?,
                active: 0,
                ports: Array::try_from(take(&mut ebpf, map::SLOT_PORTS)?)?,
                any_address: Array::try_from(take(&mut ebpf, map::ANY_ADDRESS)?)?,
                cidrs: LpmTrie::try_from(take(&mut ebpf, map::SCOPE_CIDRS)?)?,
                names: HashMap::try_from(take(&mut ebpf, map::SCOPE_NAMES)?)?,
                resolvers: LpmTrie::try_from(take(&mut ebpf, map::TRUSTED_RESOLVERS)?)?,
                exempt: HashMap::try_from(take(&mut ebpf, map::EXEMPT_EXES)?)?,
                hash_powers: Array::try_from(take(&mut ebpf, map::NAME_HASH)?)?,
                owners: HashMap::try_from(take(&mut ebpf, map::CONTEXT_OWNERS)?)?,
                context_label: Array::try_from(take(&mut ebpf, map::CONTEXT_LABEL)?)?,
                contexts: HashMap::try_from(take(&mut ebpf, map::CONTEXTS)?)?,
                hash_key: 0,
            },
            readers: HashMap::try_from(take(&mut ebpf, map::READERS)?)?,
        };
        let mut probes = Self {
            ebpf,
            machine: Machine {
                cgroup2: env.cgroup2.clone(),
                btf: Some(aya::Btf::from_sys_fs()),
                filemap_format_known: filemap.is_some(),
                bpf_lsm_inactive: bpf_lsm_inactive(),
                exe_unknown,
                skip: skip.to_vec(),
            },
            hooks: Vec::new(),
            attached: Vec::new(),
            deferred: Vec::new(),
            tls_holders: None,
        };
        for probe in TABLE {
            probes.attach_or_fall_back(probe, None)?;
        }
        probes.machine.btf = None;
        if probes
            .hooks
            .iter()
            .any(|h| h.purpose == Purpose::Proof.name())
            && let Err(e) = probes.load_tls_write()
        {
            log::warn!("proof of use over TLS unavailable: loading its uprobe failed: {e}");
        }
        if !probes
            .hooks
            .iter()
            .any(|h| h.purpose == Purpose::CredentialRead.name())
        {
            // Without read hooks (kernels before 6.11), opens are all there is: the open hook
            // is needed for every credential, not only those on tmpfs.
            probes.ensure(Purpose::CredentialOpen);
        }
        Ok((probes, maps))
    }

    /// Attaches the fallbacks for `purpose` that wait until they are needed. Failure is logged
    /// and reported in `hooks`, never fatal.
    pub fn ensure(&mut self, purpose: Purpose) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|(p, _)| p.purpose == purpose);
        self.deferred = later;
        for (refused, chain) in now {
            let Fallback::WhenNeeded(fallbacks) = refused.fallback else {
                continue;
            };
            for fallback in fallbacks {
                // Not fatal: only required probes fail the start, and they defer nothing.
                if let Err(e) = self.attach_or_fall_back(fallback, Some(&chain)) {
                    log::warn!("{e}");
                }
            }
        }
    }

    /// Loads the uprobe on TLS write functions, attached per library later (`hook_tls_writes`).
    fn load_tls_write(&mut self) -> Result<(), ProgramError> {
        let program: &mut UProbe = self
            .ebpf
            .program_mut(program::TLS_WRITE)
            .ok_or(ProgramError::NotLoaded)?
            .try_into()?;
        program.load()
    }

    /// From now on, TLS write functions are hooked in the processes `follow_tls` names only
    /// (tls_holders.rs), not in every process that maps them.
    pub fn scope_tls_writes_to_holders(&mut self) -> Result<(), String> {
        let program: &mut UProbe = self.program_of_type(program::TLS_WRITE)?;
        let fd = program
            .fd()
            .map_err(|_| "the uprobe program is not loaded (no send hook)")?;
        self.tls_holders = Some(TlsHolders::new(fd.as_fd())?);
        Ok(())
    }

    /// Hooks the functions at `offsets` in the file at `path` (a /proc/self/fd link), for
    /// every process that maps it, or only for those followed. Fails when the send hook that
    /// gives the writes their connection is missing.
    pub fn hook_tls_writes(&mut self, path: &Path, offsets: &[u64]) -> Result<(), ProgramError> {
        let program: &mut UProbe = self
            .ebpf
            .program_mut(program::TLS_WRITE)
            .ok_or(ProgramError::NotLoaded)?
            .try_into()?;
        if program.fd().is_err() {
            return Err(refusal("no send hook: requests sent over TLS are not read"));
        }
        if let Some(holders) = &mut self.tls_holders {
            holders.add_points(path, offsets).map_err(refusal)?;
        } else {
            program.attach(
                offsets
                    .iter()
                    .map(|o| UProbeAttachLocation::AbsoluteOffset(*o)),
                path,
                UProbeScope::AllProcesses,
            )?;
        }
        if !self
            .attached
            .iter()
            .any(|p| p.program == program::TLS_WRITE)
        {
            self.attached.push(&TLS_WRITE_PROBE);
        }
        Ok(())
    }

    /// Reads the TLS writes of process `pid` (started at `start`; and with `children`, of the
    /// children it forks from now on), when they are read from holders only. Returns whether
    /// its writes are read.
    pub fn follow_tls(&mut self, pid: u32, start: u64, children: bool) -> bool {
        match &mut self.tls_holders {
            Some(holders) => holders.follow(pid, start, children),
            None => true,
        }
    }

    /// Stops following the processes `tracked` (pid, start) no longer knows.
    pub fn sweep_tls(&mut self, tracked: impl Fn(u32, u64) -> bool) {
        if let Some(holders) = &mut self.tls_holders {
            holders.sweep(tracked);
        }
    }

    /// Whether opens of credentials can be refused here, and if not, why (for `ready`).
    pub fn read_denial(&self) -> Result<(), String> {
        let lsm = Attach::Lsm("file_open").hook();
        if let Some(why) = &self.machine.bpf_lsm_inactive {
            return Err(format!("unavailable: {why} (boot with lsm=...,bpf)"));
        }
        if let Some(why) = &self.machine.exe_unknown {
            return Err(format!("unavailable: {why}"));
        }
        if self.hooks.iter().any(|h| h.hook == lsm) {
            return Ok(());
        }
        let refused = self
            .hooks
            .iter()
            .filter(|h| h.instead_of.as_deref() == Some(lsm.as_str()))
            .filter_map(|h| h.note.clone())
            .chain(
                self.deferred
                    .iter()
                    .filter(|(_, chain)| chain.head.attach.hook() == lsm)
                    .map(|(_, chain)| chain.refusals.clone()),
            )
            .next();
        Err(format!(
            "unavailable: the kernel refused {lsm} ({})",
            refused.unwrap_or_else(|| "no reason given".into())
        ))
    }

    /// The program `name`, as the type of program it is (the caller's), or why not.
    fn program_of_type<'a, T>(&'a mut self, name: &str) -> Result<&'a mut T, String>
    where
        &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
    {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| format!("the program {name} is missing (rebuild keytrail)"))?
            .try_into()
            .map_err(|e: ProgramError| format!("{name}: {e}"))
    }

    /// Runs of the attached programs the kernel skipped so far, because the program was
    /// already running on that CPU.
    pub fn missed_runs(&self) -> u64 {
        let mut programs: Vec<&str> = self.attached.iter().map(|p| p.program).collect();
        programs.sort_unstable();
        programs.dedup();
        programs
            .into_iter()
            .filter_map(|name| self.ebpf.program(name)?.fd().ok())
            .filter_map(statistics::program_info)
            .map(|info| info.recursion_misses)
            .sum()
    }

    /// Each attached program's runs and run time so far, from the kernel's statistics (zero
    /// unless `kernel.bpf_stats_enabled` is 1). A program attached to several hooks (the
    /// syscall tracepoints) is one entry.
    pub fn run_statistics(&self) -> Vec<RunStatistics> {
        let mut out: Vec<RunStatistics> = Vec::new();
        for probe in &self.attached {
            let hook = probe.attach.hook();
            if let Some(seen) = out.iter_mut().find(|s| s.program == probe.program) {
                seen.hooks = format!("{}, {hook}", seen.hooks);
                continue;
            }
            let Some(info) = self
                .ebpf
                .program(probe.program)
                .and_then(|p| p.fd().ok())
                .and_then(statistics::program_info)
            else {
                continue;
            };
            out.push(RunStatistics {
                program: probe.program,
                hooks: hook,
                runs: info.run_cnt,
                run_time: std::time::Duration::from_nanos(info.run_time_ns),
                missed: info.recursion_misses,
            });
        }
        out
    }

    /// Attaches `probe`, or else walks its chain of fallbacks. `chain`: the hook at the head of
    /// the chain this one stands in for, and why each hook before it was refused.
    fn attach_or_fall_back(
        &mut self,
        probe: &'static Probe,
        chain: Option<&Chain>,
    ) -> Result<(), ProbeError> {
        let hook = probe.attach.hook();
        if self.hooks.iter().any(|h| h.hook == hook) {
            return Ok(()); // a fallback two chains share, attached for the first
        }
        let refused = match attach(&mut self.ebpf, probe, &self.machine) {
            Ok(()) => {
                if let Some(chain) = chain {
                    log::info!(
                        "{hook} serves in place of {} ({})",
                        chain.head.attach.hook(),
                        chain.refusals
                    );
                }
                self.hooks.push(report(probe, chain));
                self.attached.push(probe);
                return Ok(());
            }
            Err(e) => e,
        };
        let chain = match chain {
            Some(c) => c.then(&hook, &refused),
            None => Chain::start(probe, &hook, &refused),
        };
        match probe.fallback {
            Fallback::None if probe.required => Err(ProbeError::Attach {
                hook,
                source: refused,
            }),
            Fallback::None if std::ptr::eq(chain.head, probe) => {
                // Without BPF LSM, `ready.enforcement.reads` already says why nothing is
                // refused: the LSM-only probes need no warning of their own.
                if matches!(probe.needs, Needs::ActiveBpfLsm)
                    && self.machine.bpf_lsm_inactive.is_some()
                {
                    log::info!("{hook} unavailable ({refused}): {}", probe.without);
                } else {
                    log::warn!("{hook} unavailable ({refused}): {}", probe.without);
                }
                Ok(())
            }
            Fallback::None => {
                log::warn!(
                    "{} (Linux {}+) and its fallbacks unavailable ({}): {}",
                    chain.head.attach.hook(),
                    chain.head.since,
                    chain.refusals,
                    chain.head.without
                );
                Ok(())
            }
            Fallback::Now(fallbacks) => {
                for fallback in fallbacks {
                    self.attach_or_fall_back(fallback, Some(&chain))?;
                }
                Ok(())
            }
            Fallback::WhenNeeded(_) => {
                log::info!("{hook} refused ({refused}); its fallback is attached when needed");
                self.deferred.push((probe, chain));
                Ok(())
            }
        }
    }
}

/// One program's share of the kernel's BPF statistics.
pub struct RunStatistics {
    pub program: &'static str,
    /// The hooks it is attached to, comma-separated.
    pub hooks: String,
    pub runs: u64,
    pub run_time: std::time::Duration,
    /// Runs skipped because the program was already running on that CPU (counted whether or
    /// not statistics are enabled).
    pub missed: u64,
}

/// The refused hooks of one chain so far: its head, and why each was refused.
#[derive(Clone)]
struct Chain {
    head: &'static Probe,
    refusals: String,
}

impl Chain {
    fn start(head: &'static Probe, hook: &str, why: &ProgramError) -> Self {
        Self {
            head,
            refusals: format!("{hook} refused: {why}"),
        }
    }

    fn then(&self, hook: &str, why: &ProgramError) -> Self {
        Self {
            head: self.head,
            refusals: format!("{}; {hook} refused: {why}", self.refusals),
        }
    }
}

/// Loads `probe`'s program (once: fallbacks may share one) and attaches it.
fn attach(ebpf: &mut Ebpf, probe: &Probe, machine: &Machine) -> Result<(), ProgramError> {
    if machine.skip.contains(&probe.attach.kind()) {
        return Err(refusal("skipped by --skip-hooks"));
    }
    match probe.needs {
        Needs::Nothing => {}
        Needs::FilemapFormat if machine.filemap_format_known => {}
        Needs::FilemapFormat => return Err(refusal("no filemap tracepoint format in tracefs")),
        Needs::ActiveBpfLsm => {
            if let Some(why) = &machine.bpf_lsm_inactive {
                return Err(refusal(why));
            }
        }
    }
    let program = ebpf
        .program_mut(probe.program)
        .ok_or(ProgramError::NotLoaded)?;
    match probe.attach {
        Attach::RawTracepoint(name) => {
            let p: &mut RawTracePoint = program.try_into()?;
            p.load()?;
            p.attach(name)?;
        }
        Attach::BtfTracepoint(name) => {
            let p: &mut BtfTracePoint = program.try_into()?;
            p.load(name, kernel_btf(machine)?)?;
            p.attach()?;
        }
        Attach::Tracepoint { category, name } => {
            let p: &mut TracePoint = program.try_into()?;
            if p.fd().is_err() {
                p.load()?;
            }
            p.attach(category, name)?;
        }
        Attach::Lsm(name) => {
            let p: &mut Lsm = program.try_into()?;
            p.load(name, kernel_btf(machine)?)?;
            p.attach()?;
        }
        Attach::FEntry(function) => {
            let p: &mut FEntry = program.try_into()?;
            p.load(function, kernel_btf(machine)?)?;
            p.attach()?;
        }
        Attach::KProbe(function) => {
            let p: &mut KProbe = program.try_into()?;
            p.load()?;
            p.attach(function, 0)?;
        }
        Attach::CgroupSockAddr(_) => {
            let p: &mut CgroupSockAddr = program.try_into()?;
            p.load()?;
            // Single: AllowMultiple on the cgroup2 root gave EINVAL on the development host.
            p.attach(cgroup_root(machine)?, CgroupAttachMode::Single)?;
        }
        Attach::CgroupSkb(attach_type) => {
            let p: &mut CgroupSkb = program.try_into()?;
            p.load()?;
            p.attach(cgroup_root(machine)?, attach_type, CgroupAttachMode::Single)?;
        }
        Attach::CgroupSockRelease => {
            let p: &mut CgroupSock = program.try_into()?;
            p.load()?;
            p.attach(cgroup_root(machine)?, CgroupAttachMode::Single)?;
        }
        Attach::UProbe => return Err(refusal("uprobes are set per file as files are found")),
    }
    Ok(())
}

/// `probe` attached, in place of the head of `chain` when it is a fallback.
fn report(probe: &Probe, chain: Option<&Chain>) -> HookReport {
    HookReport {
        purpose: probe.purpose.name().to_owned(),
        hook: probe.attach.hook(),
        instead_of: chain.map(|c| c.head.attach.hook()),
        note: chain.map(|c| c.refusals.clone()),
    }
}

/// The uprobe on TLS write functions, as the statistics name it: attached to files as they are
/// found, not from the table.
static TLS_WRITE_PROBE: Probe = Probe {
    purpose: Purpose::Proof,
    program: program::TLS_WRITE,
    attach: Attach::UProbe,
    since: "5.10",
    needs: Needs::Nothing,
    required: false,
    fallback: Fallback::None,
    without: "requests sent over TLS are not read",
};

fn refusal(why: impl Into<String>) -> ProgramError {
    ProgramError::IOError(std::io::Error::other(why.into()))
}

fn kernel_btf(machine: &Machine) -> Result<&aya::Btf, ProgramError> {
    match &machine.btf {
        Some(Ok(btf)) => Ok(btf),
        Some(Err(e)) => Err(refusal(format!("kernel BTF: {e}"))),
        None => Err(refusal("kernel BTF was released after start")),
    }
}

fn cgroup_root(machine: &Machine) -> Result<File, ProgramError> {
    let path = &machine.cgroup2;
    File::open(path).map_err(|e| {
        refusal(format!(
            "cannot open the cgroup2 root {}: {e}",
            path.display()
        ))
    })
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))
}

/// Why BPF LSM programs would never run here, if the kernel says so: a kernel with BPF LSM
/// built in but not in its active LSM list (the `lsm=` boot parameter; Debian's default) loads
/// and attaches them without error, and never calls them.
fn bpf_lsm_inactive() -> Option<String> {
    let path = Path::new("/sys/kernel/security/lsm");
    if !path.exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "securityfs", "securityfs", "/sys/kernel/security"])
            .output();
    }
    let active = std::fs::read_to_string(path).ok()?;
    (!active.split(',').any(|l| l.trim() == "bpf"))
        .then(|| format!("bpf is not among the active LSMs ({})", active.trim()))
}

#[cfg(test)]
mod tests;
