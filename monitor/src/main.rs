//! keytrail: an eBPF host-level credential-use monitor. See README.md for the data flow:
//! kernel hook -> ring buffer -> decode -> process tracker -> catalog match -> correlate -> sink.
mod btf;
mod catalog;
mod cli;
mod clock;
mod correlate;
mod daemon;
mod decode;
mod kernel_layout;
mod preflight;
mod probes;
mod process;
mod readiness;
mod record;
mod sink;
mod watcher;

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;

use crate::{
    catalog::{Catalog, Kind, Source},
    cli::{Cli, Command, WatchArgs},
    sink::Format,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = ["info", "debug", "trace"][cli.verbose.min(2) as usize];
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_target(false)
        .init();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Catalog(args) => print_catalog(&args.watch, args.format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The embedded default catalog plus `--watch` entries.
fn catalog(args: &WatchArgs) -> Catalog {
    let homes = catalog::home_directories(&args.passwd);
    let mut sources: Vec<Source> = args
        .watch
        .iter()
        .map(|(path, kind)| Source {
            pattern: path.clone(),
            kind: kind.unwrap_or_else(|| Kind::guess(path)),
        })
        .collect();
    sources.extend(Catalog::builtin_sources(&homes));
    Catalog::new(sources)
}

fn run(args: cli::RunArgs) -> anyhow::Result<()> {
    let colour = args.format == Format::Text && std::io::stdout().is_terminal();
    let sink = sink::for_format(args.format, daemon::stdout(), colour);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(daemon::run(catalog(&args.watch), sink))
}

fn print_catalog(args: &WatchArgs, format: Format) -> anyhow::Result<()> {
    let mut catalog = catalog(args);
    catalog.resolve();
    for c in catalog.credentials() {
        match format {
            Format::Json => println!(
                "{}",
                serde_json::json!({"id": c.id, "kind": c.kind, "path": c.path, "owner_uid": c.owner_uid,
                    "dev": c.file.dev, "ino": c.file.ino, "page_cache": c.page_cache})
            ),
            Format::Text => println!("{:<8} {:<6} {}", c.kind, c.owner_uid, c.path.display()),
        }
    }
    let found = catalog.credentials().count();
    let places = catalog.sources().len();
    log::info!(
        "{found} credentials found in {places} places watched (missing files are watched for when they appear)"
    );
    Ok(())
}
