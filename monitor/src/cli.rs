//! The command line (the contract: README.md, "Commands"). Raw flags here; `main` turns them into settings.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{kernel::probes::Attach, sink::Format, vocab::Kind};

#[derive(Debug, Parser)]
#[command(
    name = "keytrail",
    version,
    about = "Which process read which credential, and where it then connected: an eBPF monitor.",
    long_about = "keytrail watches credential files (cloud keys, kube configs, git and registry tokens, \
SSH keys) from the kernel, and joins each read with the connections that follow in the same \
process lineage: user -> agent -> process -> credential -> endpoint."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log detail on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the probes and stream records until SIGINT or SIGTERM (needs root).
    Run(RunArgs),
    /// Print the credentials keytrail would watch, resolved on this host.
    Catalog(CatalogArgs),
    /// Print the embedded default policy (a starting point for --config).
    Policy(PolicyArgs),
    /// Check a policy file; errors name the file, line and field. Exit status 2 if it is bad.
    CheckConfig(CheckConfigArgs),
    /// Run a recorded NDJSON stream (from `run --format json`, or hand-written) through the
    /// rules and print the findings. Needs no privileges.
    Replay(ReplayArgs),
    /// Print the man page (roff), for packaging.
    #[command(hide = true)]
    Manpage,
    /// Print the completions for SHELL, for packaging.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The embedded default policy.
    #[arg(long, required = true)]
    pub default: bool,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The policy file to check.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// NDJSON records, one per line (`-` for standard input). Lines that are empty or start
    /// with `#` are skipped.
    pub file: PathBuf,
    /// Policy file (default: KEYTRAIL_CONFIG's, else /etc/keytrail/policy.toml when present,
    /// else the embedded default).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Policy file (default: KEYTRAIL_CONFIG's, else /etc/keytrail/policy.toml when present,
    /// else the embedded default: `keytrail policy --default`). `run` reads it again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also watch PATH (globs allowed), as credential KIND (default: guessed from the name).
    #[arg(long = "watch", value_name = "PATH[=KIND]", value_parser = parse_watch)]
    pub watch: Vec<(String, Option<Kind>)>,
    /// Read home directories from this passwd file instead of the user database (NSS: files,
    /// LDAP, SSSD, ...): in a container, the host's (the DaemonSet mounts /etc at /host/etc).
    /// It is read again when it changes.
    #[arg(long, value_name = "FILE")]
    pub passwd: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Output format for records on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// How often a `stats` record is printed while running (counts since start; `0s`: only at
    /// stop).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_interval)]
    pub stats_interval: std::time::Duration,
    /// Never use these kinds of hook (comma-separated: tp_btf, tracepoint, lsm, fentry,
    /// kprobe, ...), as if the kernel refused them: their fallbacks are used instead. For
    /// testing the fallbacks, and for working around a kernel bug in one kind of hook.
    #[arg(long, value_name = "KIND,...", value_delimiter = ',', value_parser = parse_hook_kind)]
    pub skip_hooks: Vec<&'static str>,
    /// Colour in text output: `auto` on a terminal unless NO_COLOR is set, `always`, `never`.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Append records to FILE instead of printing them (created 0640 when missing). SIGHUP
    /// reopens it, after logrotate moved it away.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Send records to syslog instead of printing them, one message each (facility authpriv,
    /// the message as --format writes it): `tcp:HOST:PORT` (a collector; RFC 5424, MSGID the
    /// record's type, RFC 6587 octet counting) or `unix:/dev/log` (the local daemon, in the
    /// local form it parses).
    #[arg(long, value_name = "TARGET", conflicts_with = "output")]
    pub syslog: Option<crate::sink::syslog::Target>,
    /// Also send every record to NATS JetStream at URL (`nats://HOST:PORT`; the policy's
    /// `[fleet] nats` otherwise): subject keytrail.<host>.<type>, through an on-disk spool, so
    /// nothing is lost while the server is away. Credentials come from files the policy names.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9469): records and
    /// findings written, events lost by cause, lag, catalog size, memory.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Refuse nothing: report what policy's `action = "deny"` would have refused, as findings
    /// with `action: would-deny` (also `[enforcement] dry_run = true` in the policy).
    #[arg(long)]
    pub dry_run_enforce: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[arg(long, value_enum, default_value_t = CatalogFormat::Text)]
    pub format: CatalogFormat,
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// How `catalog` prints: the catalog is keytrail's own list, not events, so it has no OCSF form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CatalogFormat {
    /// One line per credential: kind, owner, path.
    Text,
    /// One JSON object per credential.
    Json,
}

/// When text output is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    /// Whether to colour, writing to a terminal or not, with NO_COLOR set or not
    /// (no-color.org: any non-empty value).
    pub fn wanted(self, terminal: bool, no_color: bool) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => terminal && !no_color,
        }
    }
}

/// A duration written for humans: `10s`, `1m`.
fn parse_interval(value: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("`{value}`: {e} (try `10s`)"))
}

/// A kind of hook, as `ready` names them (the part of a hook before its slash).
fn parse_hook_kind(value: &str) -> Result<&'static str, String> {
    Attach::KINDS
        .iter()
        .find(|k| **k == value)
        .copied()
        .ok_or_else(|| {
            format!(
                "`{value}` is not a kind of hook; known: {}",
                Attach::KINDS.join(", ")
            )
        })
}

/// `PATH` or `PATH=KIND`; a relative PATH is taken from the current directory.
fn parse_watch(value: &str) -> Result<(String, Option<Kind>), String> {
    let (path, kind) = match value.rsplit_once('=') {
        Some((path, kind)) => (path, Some(kind.parse::<Kind>()?)),
        None => (value, None),
    };
    if path.is_empty() {
        return Err("--watch needs a path".into());
    }
    let path = std::path::absolute(path).map_err(|e| format!("cannot resolve {path}: {e}"))?;
    Ok((path.display().to_string(), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_takes_a_path_and_an_optional_kind() {
        assert_eq!(
            parse_watch("/a/b=aws").unwrap(),
            ("/a/b".into(), Some(Kind::Aws))
        );
        assert_eq!(parse_watch("/a/b").unwrap(), ("/a/b".into(), None));
        assert!(
            parse_watch("/a/b=nope")
                .unwrap_err()
                .contains("unknown credential kind")
        );
        assert!(parse_watch("rel").unwrap().0.starts_with('/'));
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color_unless_asked() {
        assert!(Color::Auto.wanted(true, false));
        assert!(!Color::Auto.wanted(true, true), "NO_COLOR");
        assert!(!Color::Auto.wanted(false, false), "a pipe or a file");
        assert!(Color::Always.wanted(false, true));
        assert!(!Color::Never.wanted(true, false));
    }

    #[test]
    fn help_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
