//! keytrail at scale, on its own: the rate of credential events it takes with nothing lost,
//! the lag from the syscall to the printed record, and its memory with 10,000 live processes
//! and after a storm of short-lived ones. The workloads are modes of xtask/bench/workload.c.
use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::host;

/// Credential files each child of the storm reads: a child can only make one event per file
/// (keytrail reports a process's first read), and forks are slow here, so many files per child.
const FILES: usize = 64;
const STORM_CHILDREN: u64 = 1_500;
const LIVE_PROCESSES: u64 = 10_000;
const SHORT_LIVED: u64 = 50_000;

/// keytrail with its stdout read line by line, each line stamped when it arrived.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<(SystemTime, String)>,
}

impl Daemon {
    fn start(keytrail: &Path, files: &[PathBuf]) -> anyhow::Result<Self> {
        let mut command = Command::new(keytrail);
        host::off_workload_cpu(&mut command).args(["run", "--format", "json"]);
        for f in files {
            command
                .arg("--watch")
                .arg(format!("{}=generic", f.display()));
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting keytrail")?;
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((SystemTime::now(), line)).is_err() {
                    break;
                }
            }
        });
        let daemon = Self { child, lines };
        daemon.wait_for("\"type\":\"ready\"")?;
        Ok(daemon)
    }

    fn wait_for(&self, text: &str) -> anyhow::Result<()> {
        loop {
            let (_, line) = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .with_context(|| format!("keytrail printed no {text} within 30 s"))?;
            if line.contains(text) {
                return Ok(());
            }
        }
    }

    fn rss_kb(&self, field: &str) -> u64 {
        super::monitors::status_kb(self.child.id(), field).unwrap_or(0)
    }

    /// Stops keytrail; returns every record it printed after `ready`, with arrival times.
    fn stop(mut self) -> anyhow::Result<Vec<(SystemTime, Value)>> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait()?;
        Ok(self
            .lines
            .try_iter()
            .filter_map(|(t, l)| Some((t, serde_json::from_str(&l).ok()?)))
            .collect())
    }
}

fn workload(binary: &Path, args: &[String]) -> anyhow::Result<String> {
    let out = host::on_workload_cpu(&mut Command::new(binary))
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "workload {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Seconds since the epoch of an RFC 3339 UTC time as keytrail prints it.
fn parse_time(text: &str) -> Option<f64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let s: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(keytrail: &Path, binary: &Path, out_dir: &Path) -> anyhow::Result<Value> {
    let dir = out_dir.join("scale-credentials");
    fs::create_dir_all(&dir)?;
    let files: Vec<PathBuf> = (0..FILES)
        .map(|i| dir.join(format!("credential-{i:02}")))
        .collect();
    for f in &files {
        fs::write(f, "kt-bench-scale-token\n")?;
    }

    eprintln!("xtask bench: credential storm ({STORM_CHILDREN} processes x {FILES} credentials)");
    let daemon = Daemon::start(keytrail, &files)?;
    let args = [
        "credstorm".to_owned(),
        STORM_CHILDREN.to_string(),
        dir.display().to_string(),
    ];
    let elapsed_s = workload(binary, &args)?.parse::<f64>()? / 1e9;
    thread::sleep(Duration::from_secs(2)); // connection records wait up to 1 s for a name
    let records = daemon.stop()?;
    let made = STORM_CHILDREN * FILES as u64;
    let mut lags: Vec<f64> = Vec::new();
    let (mut accesses, mut connections, mut dropped) = (0u64, 0u64, None);
    for (arrived, r) in &records {
        match r["type"].as_str() {
            Some("credential_access") => {
                accesses += 1;
                let at = arrived.duration_since(UNIX_EPOCH)?.as_secs_f64();
                if let Some(t) = r["time"].as_str().and_then(parse_time) {
                    lags.push((at - t) * 1e3);
                }
            }
            Some("connection") => connections += 1,
            Some("stats") => dropped = r["dropped"].as_u64(),
            _ => {}
        }
    }
    lags.sort_by(f64::total_cmp);
    let rate = made as f64 / elapsed_s;

    eprintln!("xtask bench: {LIVE_PROCESSES} live processes");
    let daemon = Daemon::start(keytrail, &files[..1])?;
    let mut procs = host::on_workload_cpu(&mut Command::new(binary))
        .args(["procs", &LIVE_PROCESSES.to_string()])
        .arg(&files[0])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut ready = String::new();
    BufReader::new(procs.stdout.take().unwrap()).read_line(&mut ready)?;
    thread::sleep(Duration::from_secs(3)); // let keytrail take every fork and read
    let live_rss = daemon.rss_kb("VmRSS:");
    drop(procs.stdin.take()); // the workload ends its children
    procs.wait()?;
    eprintln!("xtask bench: {SHORT_LIVED} short-lived processes");
    workload(binary, &["storm".into(), SHORT_LIVED.to_string()])?;
    thread::sleep(Duration::from_secs(1));
    let peak_rss = daemon.rss_kb("VmHWM:");
    let after_rss = daemon.rss_kb("VmRSS:");
    daemon.stop()?;

    Ok(serde_json::json!({
        "credential_events": made,
        "credential_access_records": accesses,
        "connections": STORM_CHILDREN,
        "connection_records": connections,
        "dropped": dropped,
        "events_per_second": rate,
        "lag_ms": {"p50": percentile(&lags, 0.5), "p99": percentile(&lags, 0.99), "max": lags.last()},
        "rss_kb": {"live_processes": live_rss, "peak": peak_rss, "after_storm": after_rss},
        "live_processes": LIVE_PROCESSES,
        "short_lived": SHORT_LIVED,
    }))
}

/// One line per figure, for the terminal.
pub fn print(s: &Value) {
    println!(
        "credential storm: {} events in {:.0}/s, {} access records, {} of {} connection records, {} dropped",
        s["credential_events"],
        s["events_per_second"].as_f64().unwrap_or(0.0),
        s["credential_access_records"],
        s["connection_records"],
        s["connections"],
        s["dropped"]
    );
    println!(
        "lag syscall -> printed record: p50 {:.1} ms, p99 {:.1} ms",
        s["lag_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
        s["lag_ms"]["p99"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "RSS: {} KiB with {} live processes; peak {} KiB after {} short-lived ones ({} KiB now)",
        s["rss_kb"]["live_processes"],
        s["live_processes"],
        s["rss_kb"]["peak"],
        s["short_lived"],
        s["rss_kb"]["after_storm"]
    );
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_times_parse_to_epoch_seconds() {
        assert_eq!(super::parse_time("1970-01-01T00:00:01.5Z"), Some(1.5));
        assert_eq!(
            super::parse_time("2026-11-23T15:29:55.101352Z").map(|t| t.floor()),
            Some(1_795_447_795.0)
        );
        assert_eq!(super::parse_time("yesterday"), None);
    }
}
