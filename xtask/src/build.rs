//! Building keytrail: one release build compiles the kernel programs (monitor/build.rs) too.
use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// Builds the release binary and returns its path.
pub fn keytrail() -> anyhow::Result<PathBuf> {
    if which("bpf-linker").is_none() {
        bail!("bpf-linker is not installed: run ./xtask/setup.sh first (the README's commands do)");
    }
    eprintln!("xtask: building keytrail (release; the first build takes a minute or two)");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--package",
            "monitor",
            "--bin",
            "keytrail",
        ])
        .current_dir(workspace_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!(
            "building keytrail failed (eBPF compile errors show as `warning: monitor@…` lines above)"
        );
    }
    Ok(workspace_root().join("target/release/keytrail"))
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| p.is_file())
}

/// Runs `command` as root: directly when we are root, else through sudo.
pub fn as_root(program: &std::path::Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Command::new(program)
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("-E").arg(program);
        sudo
    }
}
