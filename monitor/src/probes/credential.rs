//! The credential hooks: reads through the page cache (filemap tracepoints, as tp_btf where the
//! kernel allows it) and opens (LSM file_open, else the openat exit tracepoints).
use std::path::Path;

use aya::{
    Btf, BtfError,
    programs::{BtfTracePoint, Lsm, ProgramError, TracePoint},
};

use super::{Probes, report};
use crate::record::HookReport;

/// (tp_btf program, classic tracepoint program, tracepoint)
const FILEMAP_HOOKS: &[(&str, &str, &str)] = &[
    (
        "keytrail_filemap_read_btf",
        "keytrail_filemap_read",
        "mm_filemap_get_pages",
    ),
    (
        "keytrail_filemap_fault_btf",
        "keytrail_filemap_fault",
        "mm_filemap_fault",
    ),
    (
        "keytrail_filemap_map_pages_btf",
        "keytrail_filemap_map_pages",
        "mm_filemap_map_pages",
    ),
];
const OPEN_SYSCALLS: &[&str] = &["sys_exit_openat", "sys_exit_openat2", "sys_exit_open"];

/// The kernel's BTF as aya parses it, for the hooks that are attached by BTF type (tp_btf, LSM).
pub(super) type KernelBtf = Result<Btf, BtfError>;

fn kernel_btf(btf: &KernelBtf) -> Result<&Btf, ProgramError> {
    btf.as_ref()
        .map_err(|e| ProgramError::IOError(std::io::Error::other(format!("kernel BTF: {e}"))))
}

impl Probes {
    /// Reads through the page cache. These hooks run on every buffered read on the machine, so
    /// the cheaper form comes first: tp_btf, whose program reads typed arguments with plain
    /// loads, where the classic tracepoint fills a record and is read with helper calls.
    /// Without either (older kernels), credential access is seen at open only.
    pub(super) fn attach_credential_read(&mut self, btf: &KernelBtf, format_known: bool) {
        for (btf_program, program, tracepoint) in FILEMAP_HOOKS {
            let btf_hook = format!("tp_btf/{tracepoint}");
            let refused = match kernel_btf(btf).and_then(|btf| {
                let p: &mut BtfTracePoint = self
                    .ebpf
                    .program_mut(btf_program)
                    .ok_or(ProgramError::NotLoaded)?
                    .try_into()?;
                p.load(tracepoint, btf)?;
                p.attach()
            }) {
                Ok(_) => {
                    self.hooks.push(report("credential-read", btf_hook));
                    continue;
                }
                Err(e) => e,
            };
            let hook = format!("tracepoint/filemap/{tracepoint}");
            let result = if format_known {
                self.attach_tracepoint(program, "filemap", tracepoint)
            } else {
                Err(ProgramError::NotLoaded)
            };
            match result {
                Ok(()) => self.hooks.push(HookReport {
                    purpose: "credential-read".into(),
                    hook,
                    instead_of: Some(btf_hook),
                    note: Some(format!("tp_btf refused: {refused}")),
                }),
                Err(e) => log::warn!(
                    "{btf_hook} refused ({refused}) and {hook} unavailable ({e}): credential \
                     reads are seen at open only"
                ),
            }
        }
    }

    fn attach_tracepoint(
        &mut self,
        program: &str,
        category: &str,
        name: &str,
    ) -> Result<(), ProgramError> {
        let p: &mut TracePoint = self
            .ebpf
            .program_mut(program)
            .ok_or(ProgramError::NotLoaded)?
            .try_into()?;
        if p.fd().is_err() {
            p.load()?;
        }
        p.attach(category, name)?;
        Ok(())
    }

    /// Opens: LSM file_open where BPF LSM is allowed; else the openat exit tracepoints, which
    /// slow every syscall, so they are attached only while a credential needs them.
    pub(super) fn attach_credential_open(&mut self, btf: &KernelBtf) {
        let lsm = bpf_lsm_inactive()
            .map_or(Ok(()), |why| {
                Err(ProgramError::IOError(std::io::Error::other(why)))
            })
            .and_then(|()| kernel_btf(btf))
            .and_then(|btf| {
                let p: &mut Lsm = self
                    .ebpf
                    .program_mut("keytrail_file_open")
                    .ok_or(ProgramError::NotLoaded)?
                    .try_into()?;
                p.load("file_open", btf)?;
                p.attach()?;
                Ok(())
            });
        match lsm {
            Ok(()) => self
                .hooks
                .push(report("credential-open", "lsm/file_open".into())),
            Err(e) => {
                log::info!(
                    "lsm/file_open refused ({e}); opens on tmpfs fall back to openat exit tracepoints"
                );
                self.lsm_refusal = Some(e.to_string());
                self.open_fallback = Some(false);
            }
        }
    }

    /// Attaches the open fallback if it is needed and not attached yet. Failure is logged and
    /// reported in `hooks`, never fatal: page-cache credentials are still seen.
    pub fn ensure_open_hook(&mut self) {
        if self.open_fallback != Some(false) {
            return;
        }
        self.open_fallback = Some(true);
        for name in OPEN_SYSCALLS {
            let hook = format!("tracepoint/syscalls/{name}");
            match self.attach_tracepoint("keytrail_open_exit", "syscalls", name) {
                Ok(()) => self.hooks.push(HookReport {
                    purpose: "credential-open".into(),
                    hook,
                    instead_of: Some("lsm/file_open".into()),
                    note: self
                        .lsm_refusal
                        .clone()
                        .map(|why| format!("lsm refused: {why}")),
                }),
                Err(e) => log::warn!("{hook} unavailable: {e}"),
            }
        }
    }
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
