//! `cargo xtask run -- ARGS`: build, then `keytrail ARGS` as root (default: `run`).
use std::os::unix::process::CommandExt as _;

use clap::Args;

use crate::build;

#[derive(Args)]
pub struct Options {
    /// Arguments for keytrail; with none, `run` on the embedded default.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub fn run(opts: Options) -> anyhow::Result<()> {
    let binary = build::keytrail()?;
    let args = if opts.args.is_empty() {
        vec!["run".to_owned()]
    } else {
        opts.args
    };
    eprintln!("xtask: {} {}", binary.display(), args.join(" "));
    // exec: keytrail gets the terminal's signals (Ctrl-C) directly.
    Err(build::as_root(&binary).args(args).exec().into())
}
