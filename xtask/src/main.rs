//! keytrail's developer tasks. Everything that needs root, the BPF toolchain or a VM goes
//! through here, so plain `cargo build` and `cargo test` stay simple.
mod bench;
mod build;
mod dist;
mod run;
mod test;
mod vm;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "keytrail developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build keytrail (kernel programs included) and run it as root: `cargo xtask run -- ARGS`.
    Run(run::Options),
    /// Run every test: unit tests, then the live-kernel integration tests (as root).
    Test(test::Options),
    /// Boot Debian kernels under qemu and run keytrail's scenarios on each.
    VmTest(vm::Options),
    /// Measure keytrail's cost against no monitor, auditd and bpftrace (as root).
    Bench(bench::Options),
    /// Build the Debian package (target/dist/keytrail_VERSION_amd64.deb): the binary, the
    /// systemd unit, the default policy, the man page and the shell completions.
    Dist,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(opts) => run::run(opts),
        Command::Test(opts) => test::run(opts),
        Command::Bench(opts) => bench::run(opts),
        Command::VmTest(opts) => vm::run(opts),
        Command::Dist => dist::run(),
    }
}
