//! Prometheus metrics on `keytrail run --metrics ADDR` (prometheus-client): what keytrail
//! wrote and when, what the kernel lost, and its own size. Counted as records go to the writer
//! (every record passes there), and from each `stats` record, so a metric and the NDJSON stream
//! never disagree. Served over plain HTTP at `/metrics` by a small responder bound before
//! keytrail drops its privileges; a scrape reads at most 8 KiB of request and waits at most
//! 5 s for it.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{record::Record, vocab::Timestamp};

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    records: Family<Labels, Counter>,
    findings: Family<Labels, Counter>,
    kernel_events: Counter,
    dropped: Family<Labels, Counter>,
    demoted: Counter,
    missed_runs: Counter,
    lag: Histogram,
    credentials: Gauge,
    processes: Gauge,
    rss: Gauge,
    /// The NATS publisher's counts (`--nats`), read at each scrape.
    fleet: Mutex<Option<Arc<super::nats::Counters>>>,
    published: Counter,
    spool_dropped: Counter,
    spool_bytes: Gauge,
    /// The kernel's totals as the last `stats` record gave them: counters go up by the
    /// difference.
    last: Mutex<HashMap<&'static str, u64>>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("keytrail");
        let records = Family::<Labels, Counter>::default();
        registry.register("records", "Records written, by type", records.clone());
        let findings = Family::<Labels, Counter>::default();
        registry.register(
            "findings",
            "Findings written, by rule and action",
            findings.clone(),
        );
        let kernel_events = Counter::default();
        registry.register(
            "kernel_events",
            "Events read from the kernel's rings",
            kernel_events.clone(),
        );
        let dropped = Family::<Labels, Counter>::default();
        registry.register(
            "dropped",
            "Events lost, by cause: process_ring_full (process lifecycle and packets), \
             critical_ring_full (credential accesses and connects), undecodable",
            dropped.clone(),
        );
        let demoted = Counter::default();
        registry.register(
            "critical_demoted",
            "Connects sent through the process ring because their user spent its budget",
            demoted.clone(),
        );
        let missed_runs = Counter::default();
        registry.register(
            "missed_runs",
            "Runs of keytrail's kernel programs the kernel skipped (busy on that CPU)",
            missed_runs.clone(),
        );
        let lag = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ]);
        registry.register(
            "record_lag_seconds",
            "From a credential access or connect in the kernel to its record going out",
            lag.clone(),
        );
        let credentials = Gauge::default();
        registry.register(
            "credentials_watched",
            "Credentials in the catalog",
            credentials.clone(),
        );
        let processes = Gauge::default();
        registry.register(
            "processes_tracked",
            "Processes the tracker holds (running, or exited with a descendant alive)",
            processes.clone(),
        );
        let rss = Gauge::default();
        registry.register(
            "resident_memory_bytes",
            "keytrail's resident memory",
            rss.clone(),
        );
        let published = Counter::default();
        registry.register(
            "published",
            "Records the NATS stream acknowledged (--nats)",
            published.clone(),
        );
        let spool_dropped = Counter::default();
        registry.register(
            "spool_dropped",
            "Records dropped because the NATS spool was full (--nats)",
            spool_dropped.clone(),
        );
        let spool_bytes = Gauge::default();
        registry.register(
            "spool_bytes",
            "Bytes of records waiting in the NATS spool (--nats)",
            spool_bytes.clone(),
        );
        Arc::new(Self {
            registry,
            fleet: Mutex::new(None),
            published,
            spool_dropped,
            spool_bytes,
            records,
            findings,
            kernel_events,
            dropped,
            demoted,
            missed_runs,
            lag,
            credentials,
            processes,
            rss,
            last: Mutex::new(HashMap::new()),
        })
    }

    /// A batch on its way to the writer.
    pub fn observe(&self, records: &[Record]) {
        let now = Timestamp::now();
        let mut by_type: HashMap<&'static str, u64> = HashMap::new();
        for record in records {
            *by_type.entry(record.type_name()).or_default() += 1;
            match record {
                Record::CredentialAccess { time, .. } | Record::Connection { time, .. } => {
                    self.lag.observe(now.since(*time).as_secs_f64());
                }
                Record::Finding(f) => {
                    self.findings
                        .get_or_create(&vec![
                            ("rule", f.rule.to_string()),
                            ("action", action_name(f).to_owned()),
                        ])
                        .inc();
                }
                Record::Stats {
                    events,
                    ringbuf_full,
                    critical_full,
                    critical_demoted,
                    undecodable,
                    missed_runs,
                    ..
                } => {
                    let mut last = self.last.lock().expect("metrics lock");
                    let mut rise = |name: &'static str, now: u64| {
                        let before = last.insert(name, now).unwrap_or(0);
                        now.saturating_sub(before)
                    };
                    self.kernel_events.inc_by(rise("events", *events));
                    let process_ring = ringbuf_full.saturating_sub(*critical_full);
                    for (cause, total) in [
                        ("process_ring_full", process_ring),
                        ("critical_ring_full", *critical_full),
                        ("undecodable", *undecodable),
                    ] {
                        let up = rise(cause, total);
                        self.dropped
                            .get_or_create(&vec![("cause", cause.to_owned())])
                            .inc_by(up);
                    }
                    self.demoted.inc_by(rise("demoted", *critical_demoted));
                    self.missed_runs.inc_by(rise("missed_runs", *missed_runs));
                }
                _ => {}
            }
        }
        for (kind, count) in by_type {
            self.records
                .get_or_create(&vec![("type", kind.to_owned())])
                .inc_by(count);
        }
    }

    pub fn set_credentials(&self, count: usize) {
        self.credentials.set(count as i64);
    }

    pub fn set_processes(&self, count: usize) {
        self.processes.set(count as i64);
    }

    /// Reads the NATS publisher's counts at each scrape.
    pub fn watch_fleet(&self, counters: Arc<super::nats::Counters>) {
        *self.fleet.lock().expect("metrics lock") = Some(counters);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        self.rss.set(resident_bytes() as i64);
        if let Some(fleet) = self.fleet.lock().expect("metrics lock").as_ref() {
            use std::sync::atomic::Ordering::Relaxed;
            let mut last = self.last.lock().expect("metrics lock");
            let mut rise = |name: &'static str, now: u64| {
                now.saturating_sub(last.insert(name, now).unwrap_or(0))
            };
            self.published
                .inc_by(rise("published", fleet.published.load(Relaxed)));
            self.spool_dropped
                .inc_by(rise("spool_dropped", fleet.dropped.load(Relaxed)));
            self.spool_bytes.set(fleet.fill() as i64);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

fn action_name(f: &crate::record::Finding) -> &'static str {
    use crate::vocab::FindingAction;
    match f.action {
        FindingAction::Reported => "reported",
        FindingAction::Denied => "denied",
        FindingAction::WouldDeny => "would-deny",
    }
}

/// Resident memory, from /proc/self/statm (pages).
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    pages * page
}

/// Longest request read from a scraper.
const MAX_REQUEST: usize = 8192;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers scrapes on `listener` until the runtime stops: `GET /metrics` gets the metrics,
/// anything else 404. One scrape at a time: a scraper is one Prometheus, not a crowd.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: not a loop that spins until they come back.
                log::debug!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut request = Vec::with_capacity(512);
        let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let mut buf = [0u8; 1024];
            while request.len() < MAX_REQUEST && !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        if read.is_err() {
            continue;
        }
        let scrape = request.starts_with(b"GET /metrics ") || request.starts_with(b"GET /metrics?");
        let response = if scrape {
            let body = metrics.render();
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
        };
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(response.as_bytes())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stats_record_moves_the_counters_by_what_it_adds() {
        let metrics = Metrics::new();
        let stats = |events, full| Record::Stats {
            time: Timestamp::now(),
            events,
            dropped: full,
            findings: 0,
            ringbuf_full: full,
            critical_full: 0,
            critical_demoted: 0,
            undecodable: 0,
            missed_runs: 0,
            names: Default::default(),
            evicted: Default::default(),
            fleet: None,
        };
        metrics.observe(&[stats(100, 2)]);
        metrics.observe(&[stats(150, 2)]);
        metrics.set_credentials(3);
        let text = metrics.render();
        assert!(text.contains("keytrail_kernel_events_total 150"), "{text}");
        assert!(
            text.contains("keytrail_dropped_total{cause=\"process_ring_full\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("keytrail_records_total{type=\"stats\"} 2"),
            "{text}"
        );
        assert!(text.contains("keytrail_credentials_watched 3"), "{text}");
        assert!(text.contains("keytrail_resident_memory_bytes "), "{text}");
    }
}
