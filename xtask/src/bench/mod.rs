//! `cargo xtask bench`: keytrail's cost against no monitor, auditd and bpftrace, on small C
//! workloads, in interleaved rounds (every monitor once per round, so drift in the machine hits
//! all alike). Reports the median ns per operation and the ratio to the baseline of the same
//! run, and writes a JSON report under target/bench/. Then keytrail alone at scale (scale.rs):
//! throughput with nothing lost, lag, and memory with many processes.
mod monitors;
mod scale;

use std::{collections::BTreeMap, fs, path::PathBuf, process::Command};

use anyhow::{Context as _, bail};
use clap::Args;
use monitors::{Monitor, Setup};

use crate::build;

#[derive(Args)]
pub struct Options {
    /// Interleaved rounds; the median of them is reported.
    #[arg(long, default_value_t = 5)]
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
}

/// (name, workload arguments, operations per run)
struct Workload {
    name: &'static str,
    mode: &'static str,
    file: Option<&'static str>,
    ops: u64,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "open+read+close (not a credential)",
        mode: "open",
        file: Some("plain"),
        ops: 40_000,
    },
    Workload {
        name: "open+read+close (a credential)",
        mode: "open",
        file: Some("credential"),
        ops: 40_000,
    },
    Workload {
        name: "connect to loopback",
        mode: "connect",
        file: None,
        ops: 10_000,
    },
    Workload {
        name: "fork+exec",
        mode: "forkexec",
        file: None,
        ops: 1_000,
    },
    Workload {
        name: "agent-shaped mix",
        mode: "agent",
        file: Some("credential"),
        ops: 1_000,
    },
];

pub fn run(opts: Options) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark loads kernel probes and audit rules: run it as root");
    }
    let keytrail = build::keytrail()?;
    let out_dir = build::workspace_root().join("target/bench");
    fs::create_dir_all(&out_dir)?;
    let workload = compile_workload(&out_dir)?;
    let plain = out_dir.join("plain.txt");
    let credential = out_dir.join("credential-token");
    fs::write(&plain, "not a secret\n".repeat(64))?;
    fs::write(&credential, "kt-bench-token-not-a-real-secret\n")?;
    let setup = Setup {
        keytrail,
        credential: credential.clone(),
        out_dir: out_dir.clone(),
    };

    let mut monitors = vec![Monitor::Baseline, Monitor::Keytrail];
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

    if opts.scale_only {
        let figures = scale::run(&setup.keytrail, &workload, &out_dir)?;
        fs::write(
            out_dir.join("scale.json"),
            serde_json::to_string_pretty(&figures)?,
        )?;
        scale::print(&figures);
        return Ok(());
    }
    let scale = if opts.quick { 10 } else { 1 };
    let mut samples: BTreeMap<(&str, Monitor), Vec<f64>> = BTreeMap::new();
    let mut peak_rss_kb = 0;
    let mut dropped = 0;
    let mut events = 0;
    for round in 1..=opts.rounds {
        for monitor in monitors.clone() {
            eprintln!(
                "xtask bench: round {round}/{}, {}",
                opts.rounds,
                monitor.name()
            );
            let running = match monitors::start(monitor, &setup) {
                Ok(r) => r,
                Err(e) if monitor != Monitor::Keytrail && monitor != Monitor::Baseline => {
                    eprintln!(
                        "\n*** xtask bench: {} did not start, left out: {e:#} ***\n",
                        monitor.name()
                    );
                    monitors.retain(|m| *m != monitor);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for w in WORKLOADS {
                let file = w
                    .file
                    .map(|f| if f == "plain" { &plain } else { &credential });
                let ns = run_workload(&workload, w.mode, w.ops / scale, file)?;
                samples.entry((w.name, monitor)).or_default().push(ns);
            }
            let stopped = running.stop()?;
            peak_rss_kb = peak_rss_kb.max(stopped.peak_rss_kb.unwrap_or(0));
            dropped += stopped.dropped.unwrap_or(0);
            events += stopped.events.unwrap_or(0);
        }
    }

    let mut table = Vec::new();
    let mut report = serde_json::Map::new();
    for w in WORKLOADS {
        let base = median(&samples[&(w.name, Monitor::Baseline)]);
        let mut row = serde_json::Map::new();
        let mut line = format!("{:<36} {:>9.0} ns", w.name, base);
        for &m in &monitors {
            let Some(s) = samples.get(&(w.name, m)) else {
                continue;
            };
            let med = median(s);
            row.insert(
                m.name().into(),
                serde_json::json!({"median_ns": med, "ratio": med / base, "samples_ns": s}),
            );
            if m != Monitor::Baseline {
                line.push_str(&format!("  {} {:.2}x", m.name(), med / base));
            }
        }
        table.push(line);
        report.insert(w.name.into(), row.into());
    }
    let scale_figures = scale::run(&setup.keytrail, &workload, &out_dir)?;
    let summary = serde_json::json!({
        "command": "cargo xtask bench",
        "rounds": opts.rounds,
        "quick": opts.quick,
        "kernel": uname_r(),
        "monitors": monitors.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "workloads": report,
        "keytrail": {"peak_rss_kb": peak_rss_kb, "events": events, "dropped": dropped},
        "scale": scale_figures,
    });
    let path = out_dir.join("report.json");
    fs::write(&path, serde_json::to_string_pretty(&summary)?)?;
    println!(
        "\nmedian of {} interleaved rounds; ratio = with monitor / baseline",
        opts.rounds
    );
    for line in table {
        println!("{line}");
    }
    println!(
        "keytrail: peak RSS {} KiB, {events} kernel events, {dropped} dropped\nreport: {}",
        peak_rss_kb,
        path.display()
    );
    scale::print(&summary["scale"]);
    Ok(())
}

fn compile_workload(out_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let source = build::workspace_root().join("xtask/bench/workload.c");
    let binary = out_dir.join("workload");
    let status = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .context("running cc (apt-get install gcc)")?;
    if !status.success() {
        bail!("compiling {} failed", source.display());
    }
    Ok(binary)
}

fn run_workload(
    binary: &PathBuf,
    mode: &str,
    ops: u64,
    file: Option<&PathBuf>,
) -> anyhow::Result<f64> {
    let mut command = Command::new(binary);
    command.arg(mode).arg(ops.to_string());
    if let Some(file) = file {
        command.arg(file);
    }
    let out = command.output().context("running a workload")?;
    if !out.status.success() {
        bail!(
            "workload {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn uname_r() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}
