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

/// Builds kt-vm-helper (xtask/vm/helper) statically linked, for the test VMs, and returns its
/// path. Its own target directory keeps the static flags away from the workspace's builds.
pub fn vm_helper() -> anyhow::Result<PathBuf> {
    let target = "x86_64-unknown-linux-gnu";
    let target_dir = workspace_root().join("target/vm-helper");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--package", "kt-vm-helper"])
        .args(["--target", target])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(workspace_root())
        .status()
        .context("running cargo build for kt-vm-helper")?;
    if !status.success() {
        bail!("building kt-vm-helper failed");
    }
    Ok(target_dir.join(target).join("release/kt-vm-helper"))
}
