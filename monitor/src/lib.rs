//! keytrail: an eBPF host-level credential-use monitor. See README.md for the data flow:
//! kernel hook -> ring buffer -> decode -> process tracker -> catalog match -> correlate -> rules
//! -> sink.
//!
//! A library only so that fuzz targets (`fuzz/`) can reach the parsers: [`main`] is the
//! `keytrail` command, [`fuzzing`] the entry points; everything else is private.
mod catalog;
mod cli;
mod clock;
mod correlate;
mod daemon;
mod decode;
mod fingerprint;
pub mod fuzzing;
mod kernel;
mod names;
mod pipeline;
mod policy;
mod privileges;
mod process;
mod proof;
mod record;
mod redact;
mod replay;
mod rules;
mod sink;
#[cfg(test)]
mod testing;
mod vocab;
mod watcher;

use std::{io::IsTerminal, path::Path, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use clap::Parser;

use crate::{
    catalog::{Catalog, Homes, Source},
    cli::{CatalogFormat, Cli, Command, WatchArgs},
    fingerprint::Fingerprinter,
    policy::{Policy, PolicySource},
    redact::Secrets,
    sink::Format,
    vocab::Kind,
};

/// Exit status of `run` when its output was closed under it (0: stopped by a signal; 1: another
/// error; 2: bad usage).
const EXIT_OUTPUT_CLOSED: u8 = 3;
/// Exit status on bad usage: clap's for bad arguments, and a policy that does not check out.
const EXIT_USAGE: u8 = 2;

/// The `keytrail` command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // -v is keytrail's own detail (its code is the `monitor` crate); aya's (hundreds of
    // relocation lines at load) only from -vv.
    let level = ["info", "info,monitor=debug", "debug,monitor=trace"][cli.verbose.min(2) as usize];
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_target(false)
        .init();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Catalog(args) => print_catalog(&args.watch, args.format),
        Command::Policy(_) => {
            print!("{}", policy::DEFAULT_TEXT);
            Ok(())
        }
        Command::CheckConfig(args) => check_config(&args.file),
        Command::Replay(args) => load_policy(args.config.as_deref())
            .and_then(|policy| replay::run(&args.file, Arc::new(policy), args.format)),
        Command::Manpage => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(&mut std::io::stdout())
            .map_err(Into::into),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "keytrail", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `run` whose output went away: what it saw is in the log; say so in the status too.
        Err(e) if e.downcast_ref::<daemon::OutputClosed>().is_some() => {
            log::error!("{e:#}");
            ExitCode::from(EXIT_OUTPUT_CLOSED)
        }
        // A policy that does not check out is bad usage, as a bad argument is.
        Err(e) if e.downcast_ref::<policy::PolicyError>().is_some() => {
            log::error!("{e:#}");
            ExitCode::from(EXIT_USAGE)
        }
        // A reader that went away (`keytrail replay F | head`) is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The policy `--config FILE` names, else `KEYTRAIL_CONFIG`'s, else /etc/keytrail/policy.toml,
/// else the embedded default (`PolicySource`).
fn load_policy(config: Option<&Path>) -> anyhow::Result<Policy> {
    Ok(PolicySource::find(config).load()?)
}

/// The policy's credentials in `homes`, plus `--watch` entries.
fn catalog(args: &WatchArgs, policy: &Policy, homes: &Homes) -> anyhow::Result<Catalog> {
    let mut sources: Vec<Source> = args
        .watch
        .iter()
        .map(|(path, kind)| {
            let kind = kind.unwrap_or_else(|| Kind::guess(path));
            Source::watched(path.clone(), kind, policy)
        })
        .collect();
    sources.extend(Catalog::policy_sources(policy, homes.present()));
    let printer = match &policy.fleet.key_file {
        Some(file) => Fingerprinter::from_fleet_key(file).map_err(anyhow::Error::msg)?,
        None => Fingerprinter::random().context("reading a fingerprint key from /dev/urandom")?,
    };
    Ok(Catalog::new(sources, Secrets::new(printer)))
}

fn run(args: cli::RunArgs) -> anyhow::Result<()> {
    // No core dump (it would hold environments and secrets on their way to a fingerprint), and
    // /proc/PID of keytrail readable by root only.
    // SAFETY: prctl with PR_SET_DUMPABLE takes plain integers.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // Before any thread starts: the namespace is each thread's own.
    kernel::preflight::join_host_cgroup_namespace();
    let source = PolicySource::find(args.watch.config.as_deref());
    let policy = source.load()?;
    let homes = Homes::read(args.watch.passwd.as_deref());
    let catalog = catalog(&args.watch, &policy, &homes)?;
    let (out, reopen_output): (Box<dyn std::io::Write + Send>, _) = match &args.output {
        Some(path) => {
            let (file, reopen) = sink::OutputFile::open(path)
                .with_context(|| format!("opening the output {}", path.display()))?;
            (Box::new(file), Some(reopen))
        }
        None => (daemon::stdout(), None),
    };
    let colour = args.format == Format::Text
        && args.color.wanted(
            args.output.is_none() && args.syslog.is_none() && std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        );
    let sink: Box<dyn sink::Sink + Send> = match &args.syslog {
        Some(target) => Box::new(
            sink::syslog::SyslogSink::connect(target.clone(), args.format)
                .with_context(|| format!("connecting to syslog at {target}"))?,
        ),
        None => sink::for_format(args.format, out, colour),
    };
    let mut fleet = None;
    let sink: Box<dyn sink::Sink + Send> =
        match args.nats.as_deref().or(policy.fleet.nats.as_deref()) {
            Some(url) => {
                let connection =
                    sink::nats::Connection::new(url, &policy.fleet).map_err(anyhow::Error::msg)?;
                let nats = sink::nats::NatsSink::start(
                    connection,
                    &policy.fleet.spool_dir,
                    policy.fleet.spool_max_bytes,
                )?;
                fleet = Some(nats.counters());
                Box::new(sink::nats::WithNats {
                    primary: sink,
                    nats,
                })
            }
            None => sink,
        };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(daemon::run(
        catalog,
        homes,
        Arc::new(policy),
        sink,
        daemon::Settings {
            stats_interval: args.stats_interval,
            skip_hooks: args.skip_hooks,
            dry_run_enforce: args.dry_run_enforce,
            policy_source: source,
            reopen_output,
            metrics: args.metrics,
            fleet,
        },
    ))
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let policy = Policy::load(path)?;
    let paths: usize = policy
        .credentials
        .iter()
        .map(|c| c.get_ref().paths.len())
        .sum();
    println!(
        "{}: ok: {} credential rules ({paths} paths), {} agent rules, {} context rules, label {}",
        path.display(),
        policy.credentials.len(),
        policy.agents.len(),
        policy.contexts.len(),
        policy.context.label
    );
    Ok(())
}

fn print_catalog(args: &WatchArgs, format: CatalogFormat) -> anyhow::Result<()> {
    let policy = load_policy(args.config.as_deref())?;
    let homes = Homes::read(args.passwd.as_deref());
    let mut catalog = catalog(args, &policy, &homes)?;
    catalog.resolve(&policy);
    for c in catalog.credentials() {
        let r = &c.record;
        let owner = r.owner.unwrap_or_default();
        match format {
            CatalogFormat::Json => println!(
                "{}",
                serde_json::json!({"id": r.id, "kind": r.kind, "path": c.path, "owner_uid": owner,
                    "dev": c.file.dev, "ino": c.file.ino, "page_cache": c.page_cache,
                    "context": r.context, "scope": r.scope, "secrets": c.fingerprints.len(),
                    "identity": r.identity(), "lifetime": r.lifetime,
                    "tools": r.parts.iter().map(|p| serde_json::json!({"id": p.id,
                        "kind": p.kind, "context": p.context, "scope": p.scope,
                        "lifetime": p.lifetime})).collect::<Vec<_>>()})
            ),
            CatalogFormat::Text => println!("{:<8} {:<6} {}", r.kind, owner, c.path.display()),
        }
    }
    let found = catalog.credentials().count();
    let places = catalog.sources().len();
    log::info!(
        "{found} credentials found in {places} places watched (missing files are watched for when they appear)"
    );
    Ok(())
}
