//! `cargo xtask bench`: keytrail's cost against no monitor, auditd and bpftrace, on small C
//! workloads, in interleaved rounds where each monitor is measured between two baselines
//! (rounds.rs), on a CPU of its own and with audit state kept fair (host.rs). Reports the
//! median ns per operation and the ratio to the baseline, and writes a JSON report under
//! target/bench/. Then keytrail alone at scale (scale.rs): throughput with nothing lost, lag,
//! and memory with many processes.
mod host;
mod monitors;
mod rounds;
mod scale;

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, bail};
use clap::Args;
use monitors::{Monitor, Setup};

use crate::build;

#[derive(Args)]
pub struct Options {
    /// Interleaved rounds; the median of them is reported. Nine, so that a 5% difference can
    /// be told from this machine's drift.
    #[arg(long, default_value_t = 9)]
    rounds: usize,
    /// Compare with keytrail only (skip auditd and bpftrace).
    #[arg(long)]
    keytrail_only: bool,
    /// Fewer operations per workload, for a quick look (figures are noisier).
    #[arg(long)]
    quick: bool,
    /// Only the scale figures (throughput, lag, memory), not the interleaved rounds.
    #[arg(long)]
    scale_only: bool,
    /// Run keytrail with `--skip-hooks KINDS` in the rounds (not at scale), to measure a fallback (e.g. `tp_btf`: the
    /// classic filemap tracepoints; `tp_btf,tracepoint,lsm`: fentry where the kernel allows it,
    /// else the openat syscall tracepoints).
    #[arg(long, value_name = "KINDS")]
    skip_hooks: Option<String>,
    /// Run keytrail with enforcement on: the benchmark's credential may only go to loopback
    /// (`action = "deny"`), so the credential workloads make holders and every connect and
    /// fork pays enforcement's lookups.
    #[arg(long)]
    enforce: bool,
    /// Whose TLS writes keytrail reads (`[proof] tls`): `all` (the default), `holders` or
    /// `off`.
    #[arg(long, value_name = "MODE", value_parser = ["all", "holders", "off"])]
    tls: Option<String>,
}

pub fn run(opts: Options) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark loads kernel probes and audit rules: run it as root");
    }
    let keytrail = build::keytrail()?;
    let out_dir = build::workspace_root().join("target/bench");
    fs::create_dir_all(&out_dir)?;
    let workload = compile_workload(&out_dir)?;
    make_tls_certificate(&out_dir)?;
    let plain = out_dir.join("plain.txt");
    let credential = out_dir.join("credential-token");
    fs::write(&plain, "not a secret\n".repeat(64))?;
    fs::write(&credential, "kt-bench-token-not-a-real-secret\n")?;
    let config = if opts.enforce || opts.tls.is_some() {
        Some(bench_policy(
            &keytrail,
            &credential,
            &out_dir,
            opts.enforce,
            opts.tls.as_deref(),
        )?)
    } else {
        None
    };
    let setup = Setup {
        keytrail,
        credential: credential.clone(),
        out_dir: out_dir.clone(),
        skip_hooks: opts.skip_hooks.clone(),
        config,
    };

    let mut monitors = vec![Monitor::Keytrail];
    if !opts.keytrail_only {
        for m in [Monitor::Auditd, Monitor::Bpftrace] {
            match monitors::available(m) {
                Ok(()) => monitors.push(m),
                Err(why) => eprintln!(
                    "\n*** xtask bench: NOT comparing with {}: {why} ***\n",
                    m.name()
                ),
            }
        }
    }

    // Also without auditd in the comparison: an earlier auditd may have left audit on.
    let _audit = host::AuditState::quiet()?;
    if opts.scale_only {
        let figures = scale::run(&setup.keytrail, &workload, &out_dir)?;
        fs::write(
            out_dir.join("scale.json"),
            serde_json::to_string_pretty(&figures)?,
        )?;
        scale::print(&figures);
        return Ok(());
    }
    let binaries = rounds::Binaries {
        workload: &workload,
        plain: &plain,
        credential: &credential,
        divide: if opts.quick { 10 } else { 1 },
    };
    let results = rounds::run(opts.rounds, &mut monitors, &setup, &binaries)?;
    let (table, report) = results.summarize(&monitors);
    let scale_figures = scale::run(&setup.keytrail, &workload, &out_dir)?;
    let summary = serde_json::json!({
        "command": "cargo xtask bench",
        "skip_hooks": opts.skip_hooks,
        "enforce": opts.enforce,
        "tls": opts.tls.as_deref().unwrap_or("all"),
        "rounds": opts.rounds,
        "quick": opts.quick,
        "kernel": uname_r(),
        "monitors": monitors.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "workloads": report,
        "keytrail": {"peak_rss_kb": results.peak_rss_kb, "events": results.events,
                     "dropped": results.dropped},
        "scale": scale_figures,
    });
    let path = out_dir.join("report.json");
    fs::write(&path, serde_json::to_string_pretty(&summary)?)?;
    println!(
        "\nmedian of {} interleaved rounds; ratio = with monitor / the baselines just before and after",
        opts.rounds
    );
    for line in table {
        println!("{line}");
    }
    println!(
        "keytrail: peak RSS {} KiB, {} kernel events, {} dropped\nreport: {}",
        results.peak_rss_kb,
        results.events,
        results.dropped,
        path.display()
    );
    scale::print(&summary["scale"]);
    Ok(())
}

/// The default policy, with (`enforce`) the benchmark's credential scoped to loopback and
/// refused elsewhere, and (`tls`) whose TLS writes are read.
fn bench_policy(
    keytrail: &std::path::Path,
    credential: &std::path::Path,
    out_dir: &std::path::Path,
    enforce: bool,
    tls: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let out = Command::new(keytrail)
        .args(["policy", "--default"])
        .output()
        .context("keytrail policy --default")?;
    let mut text = String::from_utf8(out.stdout)?;
    if let Some(mode) = tls {
        let default = "tls = \"all\"";
        if !text.contains(default) {
            bail!("the default policy no longer says {default}: update the benchmark");
        }
        text = text.replacen(default, &format!("tls = {mode:?}"), 1);
    }
    if enforce {
        text.push_str(&format!(
            "\n[[credentials]]\nkind = \"generic\"\npaths = [{:?}]\ncidrs = [\"127.0.0.0/8\"]\naction = \"deny\"\n",
            credential.display().to_string()
        ));
    }
    let path = out_dir.join("bench-policy.toml");
    fs::write(&path, text)?;
    Ok(path)
}

fn compile_workload(out_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let sources = build::workspace_root().join("xtask/bench");
    let binary = out_dir.join("workload");
    let status = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(sources.join("workload.c"))
        .arg(sources.join("https.c"))
        .args(["-lssl", "-lcrypto"])
        .status()
        .context("running cc (apt-get install gcc libssl-dev)")?;
    if !status.success() {
        bail!("compiling {} failed", sources.display());
    }
    Ok(binary)
}

/// A self-signed certificate and its key for the https workload's server, in `out_dir`; set
/// in the environment the workloads inherit.
fn make_tls_certificate(out_dir: &std::path::Path) -> anyhow::Result<()> {
    let (cert, key) = (out_dir.join("tls.pem"), out_dir.join("tls.key"));
    if !cert.exists() || !key.exists() {
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            ])
            .args(["-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .context("running openssl (apt-get install openssl)")?;
        if !out.status.success() {
            bail!(
                "openssl req failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // SAFETY: set before any thread of ours starts; the workloads inherit it.
    unsafe {
        std::env::set_var("KEYTRAIL_BENCH_CERT", &cert);
        std::env::set_var("KEYTRAIL_BENCH_KEY", &key);
    }
    Ok(())
}

fn uname_r() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}
