//! The programs that give the kernel each process's context at exec (monitor-ebpf's
//! contexts.rs): a scanner of the environment, run only by tail calls, and the exec hook that
//! starts it. Not in the probe table: they have no fallback, and without them only the
//! refusal of `cross-context-reuse` is missing (`ready.enforcement.contexts` says why).
use aya::{maps::ProgramArray, programs::RawTracePoint};
use monitor_common::{map, program};

use super::Probes;

impl Probes {
    /// Loads the scanner, puts it where the exec hook's tail call finds it, then attaches the
    /// exec hook (in that order: a hook with no scanner would take every process's context for
    /// unknown).
    pub fn load_context_scan(&mut self) -> Result<(), String> {
        let scanner: &mut RawTracePoint = self.program_of_type(program::ENV_SCAN)?;
        scanner
            .load()
            .map_err(|e| format!("the kernel refused the environment scanner: {e}"))?;
        let fd = scanner.fd().map_err(|e| e.to_string())?.try_clone();
        let fd = fd.map_err(|e| e.to_string())?;
        let mut next = ProgramArray::try_from(
            self.ebpf
                .map_mut(map::ENV_SCAN_NEXT)
                .ok_or("the scanner's program array is missing")?,
        )
        .map_err(|e| e.to_string())?;
        next.set(0, &fd, 0).map_err(|e| e.to_string())?;
        let hook: &mut RawTracePoint = self.program_of_type(program::EXEC_CONTEXT)?;
        hook.load()
            .map_err(|e| format!("the kernel refused the exec context program: {e}"))?;
        hook.attach("sched_process_exec")
            .map_err(|e| format!("attaching raw_tp/sched_process_exec for contexts: {e}"))?;
        Ok(())
    }
}
