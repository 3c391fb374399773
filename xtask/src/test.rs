//! `cargo xtask test`: unit tests, then the live-kernel integration tests as root, one at a time
//! (they attach to the whole machine's cgroup, which takes one keytrail at a time), then the
//! kernel matrix (`cargo xtask vm-test`) and the package under systemd (`vm-test --service`).
use std::process::Command;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::build;

#[derive(Args)]
pub struct Options {
    /// Only integration tests whose name contains this.
    filter: Option<String>,
    /// Skip the unit tests.
    #[arg(long)]
    integration_only: bool,
    /// Skip the kernel matrix and the service VM (Debian kernels under qemu; several minutes).
    #[arg(long)]
    no_vm: bool,
}

pub fn run(opts: Options) -> anyhow::Result<()> {
    let root = build::workspace_root();
    if !opts.integration_only {
        eprintln!("xtask: unit tests");
        let status = Command::new(env!("CARGO"))
            .args([
                "test",
                "--package",
                "monitor",
                "--package",
                "monitor-common",
                "--package",
                "xtask",
            ])
            .current_dir(&root)
            .status()
            .context("running cargo test")?;
        if !status.success() {
            bail!("unit tests failed");
        }
    }
    let binary = build::keytrail()?;
    // The package's test (tests/tests/package.rs) checks what `cargo xtask dist` builds.
    let deb = crate::dist::package(&binary)?;
    eprintln!(
        "xtask: live-kernel integration tests with {}",
        binary.display()
    );
    let mut build_tests = Command::new(env!("CARGO"));
    build_tests
        .args(["test", "--package", "keytrail-tests", "--no-run"])
        .current_dir(&root);
    if !build_tests
        .status()
        .context("building the integration tests")?
        .success()
    {
        bail!("building the integration tests failed");
    }
    // Build as ourselves, run as root: cargo under sudo may not find the toolchain.
    let mut tests = Command::new(env!("CARGO"));
    tests
        .args(["test", "--package", "keytrail-tests", "--"])
        .args(opts.filter.iter())
        .args(["--test-threads=1", "--nocapture"])
        .env("KEYTRAIL_BIN", &binary)
        .env("KEYTRAIL_DEB", &deb)
        .current_dir(&root);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the integration tests load kernel probes and need root: run `sudo -E cargo xtask test`"
        );
    }
    if !tests
        .status()
        .context("running the integration tests")?
        .success()
    {
        bail!("integration tests failed");
    }
    if opts.no_vm || opts.filter.is_some() {
        eprintln!("xtask: kernel matrix skipped (--no-vm or a test filter)");
        return Ok(());
    }
    eprintln!("xtask: kernel matrix");
    crate::vm::run(crate::vm::Options::default())?;
    eprintln!("xtask: the package under systemd, in a VM");
    crate::vm::run_service()
}
