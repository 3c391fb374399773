//! The interleaved rounds. In each, every monitor is measured between two measurements of no
//! monitor at all: B K B A B T B. A monitor's ratio in a round is against the mean of the two
//! baselines beside it, and the reported ratio is the median over rounds. This machine's speed
//! drifts by tens of percent over tens of seconds (the same loop, no monitor, measured 4.1 us
//! and 7.6 us per operation a minute apart), so a monitor compared with a baseline taken a
//! minute earlier measures the drift as much as the monitor.
use std::{collections::BTreeMap, path::Path, process::Command};

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};

use super::{
    host,
    monitors::{self, Monitor, Setup},
};

/// One workload of workload.c: its mode, the file it opens, and its operations per round.
pub struct Workload {
    pub name: &'static str,
    mode: &'static str,
    file: Option<&'static str>,
    ops: u64,
}

pub const WORKLOADS: &[Workload] = &[
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
        name: "HTTPS request, keep-alive (holds nothing)",
        mode: "https",
        file: Some("plain"),
        ops: 4_000,
    },
    Workload {
        name: "HTTPS request, keep-alive (a credential holder)",
        mode: "https",
        file: Some("credential"),
        ops: 4_000,
    },
    Workload {
        name: "agent-shaped mix",
        mode: "agent",
        file: Some("credential"),
        ops: 1_000,
    },
];

/// What the workloads run and open.
pub struct Binaries<'a> {
    pub workload: &'a Path,
    pub plain: &'a Path,
    pub credential: &'a Path,
    /// Operations are divided by this (`--quick`).
    pub divide: u64,
}

/// A monitor's figure in one round and the baseline beside it.
struct Paired {
    ns: f64,
    baseline_ns: f64,
}

/// Everything the rounds measured.
#[derive(Default)]
pub struct Results {
    baseline: BTreeMap<&'static str, Vec<f64>>,
    runs: BTreeMap<(&'static str, Monitor), Vec<Paired>>,
    pub peak_rss_kb: u64,
    pub dropped: u64,
    pub events: u64,
}

/// Runs the rounds. A peer monitor that fails to start is left out (loudly) and removed from
/// `monitors`; keytrail failing is an error.
pub fn run(
    rounds: usize,
    monitors: &mut Vec<Monitor>,
    setup: &Setup,
    bin: &Binaries,
) -> anyhow::Result<Results> {
    let mut results = Results::default();
    for round in 1..=rounds {
        let say = |what: &str| eprintln!("xtask bench: round {round}/{rounds}, {what}");
        say("baseline");
        let mut before = measure(Monitor::Baseline, setup, bin)?.0;
        for monitor in monitors.clone() {
            say(monitor.name());
            let (with, stopped) = match measure(monitor, setup, bin) {
                Ok(m) => m,
                Err(e) if monitor != Monitor::Keytrail => {
                    eprintln!(
                        "\n*** xtask bench: {} did not run, left out: {e:#} ***\n",
                        monitor.name()
                    );
                    monitors.retain(|m| *m != monitor);
                    continue;
                }
                Err(e) => return Err(e),
            };
            results.peak_rss_kb = results.peak_rss_kb.max(stopped.peak_rss_kb.unwrap_or(0));
            results.dropped += stopped.dropped.unwrap_or(0);
            results.events += stopped.events.unwrap_or(0);
            say("baseline");
            let after = measure(Monitor::Baseline, setup, bin)?.0;
            for w in WORKLOADS {
                results
                    .runs
                    .entry((w.name, monitor))
                    .or_default()
                    .push(Paired {
                        ns: with[w.name],
                        baseline_ns: (before[w.name] + after[w.name]) / 2.0,
                    });
                results
                    .baseline
                    .entry(w.name)
                    .or_default()
                    .push(before[w.name]);
            }
            before = after;
        }
        for w in WORKLOADS {
            results
                .baseline
                .entry(w.name)
                .or_default()
                .push(before[w.name]);
        }
    }
    Ok(results)
}

impl Results {
    /// The printed table (a line per workload) and the report's `workloads` object.
    pub fn summarize(&self, monitors: &[Monitor]) -> (Vec<String>, Map<String, Value>) {
        let mut table = Vec::new();
        let mut report = Map::new();
        for w in WORKLOADS {
            let base = &self.baseline[w.name];
            let mut row = Map::new();
            row.insert(
                "baseline".into(),
                json!({"median_ns": median(base), "samples_ns": base}),
            );
            let mut line = format!("{:<36} {:>9.0} ns", w.name, median(base));
            for &m in monitors {
                let Some(runs) = self.runs.get(&(w.name, m)) else {
                    continue;
                };
                let ratios: Vec<f64> = runs.iter().map(|p| p.ns / p.baseline_ns).collect();
                let ns: Vec<f64> = runs.iter().map(|p| p.ns).collect();
                let beside: Vec<f64> = runs.iter().map(|p| p.baseline_ns).collect();
                row.insert(
                    m.name().into(),
                    json!({"median_ns": median(&ns), "ratio": median(&ratios),
                           "ratios": ratios, "samples_ns": ns, "baseline_beside_ns": beside}),
                );
                line.push_str(&format!("  {} {:.2}x", m.name(), median(&ratios)));
            }
            table.push(line);
            report.insert(w.name.into(), row.into());
        }
        (table, report)
    }
}

/// Every workload under `monitor`: its figure per workload, and what the monitor left.
///
/// A figure is the fastest of `RUNS` short runs, and the runs go round the workloads (A B C,
/// A B C, ...) so that each workload's runs are spread over the whole measurement. Besides the
/// drift, this machine's noise comes in bursts of a few tenths of a second that slowed ten runs
/// in a row by 25%: back to back, all of a workload's runs could fall in one.
fn measure(
    monitor: Monitor,
    setup: &Setup,
    bin: &Binaries,
) -> anyhow::Result<(BTreeMap<&'static str, f64>, monitors::Stopped)> {
    let running = monitors::start(monitor, setup)?;
    let mut figures: BTreeMap<&'static str, f64> = BTreeMap::new();
    for _ in 0..RUNS {
        for w in WORKLOADS {
            let file = w.file.map(|f| {
                if f == "plain" {
                    bin.plain
                } else {
                    bin.credential
                }
            });
            let ops = (w.ops / bin.divide / RUNS).max(1);
            let ns = run_workload(bin.workload, w.mode, ops, file)?;
            let best = figures.entry(w.name).or_insert(f64::INFINITY);
            *best = best.min(ns);
        }
    }
    Ok((figures, running.stop()?))
}

/// Short runs per workload in a measurement.
const RUNS: u64 = 7;

fn run_workload(binary: &Path, mode: &str, ops: u64, file: Option<&Path>) -> anyhow::Result<f64> {
    let mut command = Command::new(binary);
    host::on_workload_cpu(&mut command)
        .arg(mode)
        .arg(ops.to_string());
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
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
