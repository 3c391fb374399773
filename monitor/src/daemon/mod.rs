//! `keytrail run`: load the probes, then move events from the ring buffers through the
//! correlator to the sink (drain.rs) until SIGINT, SIGTERM or SIGQUIT; then detach, drain what
//! is left and print stats.
mod drain;
mod kernel_catalog;
mod notify;

use std::{io::Write, sync::Arc, time::Duration};

use anyhow::Context as _;
use monitor_common::counter;
use tokio::signal::unix::{SignalKind, signal};

use self::{
    drain::{DRAIN_BUDGET, Rings, drain},
    kernel_catalog::KernelCatalog,
};
use crate::{
    catalog::{Catalog, Homes},
    clock::{self, Clock},
    kernel::{
        preflight,
        probes::{Counters, Maps, Probes},
        read_denial::{self, ReadersMap},
        readiness,
        tls_libraries::TlsLibraries,
    },
    names::Resolvers,
    pipeline::{Pipeline, SourceCounts},
    policy::{Policy, PolicySource, TlsProof},
    privileges,
    process::{ProcKey, ProcessTracker},
    record::Record,
    sink::{Sink, Writer, metrics::Metrics},
    vocab::Timestamp,
    watcher::Watcher,
};

/// How often the ring buffer is drained when the kernel did not wake us. The kernel wakes the
/// reader for credential accesses (at most once a millisecond), and for other events only
/// past a fill threshold, because a wakeup per event costs more than the event; this bounds how
/// long any event waits.
const DRAIN_TICK: Duration = Duration::from_millis(10);
/// How often exited processes are forgotten (every second).
const SWEEP_EVERY_TICKS: u32 = 100;
/// The least time between two resolves for agent workspaces coming and going.
const WORKSPACE_REFRESH: Duration = Duration::from_millis(250);

/// How `run` behaves, from the command line.
pub struct Settings {
    /// How often a `stats` record is written (zero: only at stop).
    pub stats_interval: Duration,
    /// Kinds of hook never to use (`--skip-hooks`).
    pub skip_hooks: Vec<&'static str>,
    /// Refuse nothing; report what policy's `deny` would have refused (`--dry-run-enforce`).
    pub dry_run_enforce: bool,
    /// Where the policy was read from, and is read again on SIGHUP.
    pub policy_source: PolicySource,
    /// Set on SIGHUP when records go to a file (`--output`): reopened before the next batch.
    pub reopen_output: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Where to serve Prometheus metrics (`--metrics`).
    pub metrics: Option<std::net::SocketAddr>,
    /// The NATS publisher's counts (`--nats`), for the metrics.
    pub fleet: Option<Arc<crate::sink::nats::Counters>>,
}

pub async fn run(
    mut catalog: Catalog,
    mut homes: Homes,
    mut policy: Arc<Policy>,
    mut sink: Box<dyn Sink + Send>,
    settings: Settings,
) -> anyhow::Result<()> {
    let Settings {
        stats_interval,
        skip_hooks,
        dry_run_enforce,
        policy_source,
        reopen_output,
        metrics: metrics_address,
        fleet,
    } = settings;
    // Bound before anything else: a port taken (or one below 1024, before the privileges go)
    // is a clear error at start, not a silent absence later.
    let metrics = match metrics_address {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("--metrics {address}: cannot listen there"))?;
            log::info!("metrics at http://{address}/metrics");
            let metrics = Metrics::new();
            if let Some(fleet) = fleet {
                metrics.watch_fleet(fleet);
            }
            tokio::spawn(crate::sink::metrics::serve(listener, Arc::clone(&metrics)));
            Some(metrics)
        }
        None => None,
    };
    let env = preflight::check()?;
    raise_descriptor_limit();
    let clock = Clock::now();
    // Probes first, then /proc: a process that execs while keytrail starts is then either in
    // /proc already exec'd or in an exec event handled after the seed. The other way round, an
    // exec between the seed and the attach was seen by neither, and the process kept the
    // command line it had before (the kernel matrix caught it).
    let (mut probes, maps) = Probes::load(&env, &skip_hooks)?;
    let mut tls_libraries = TlsLibraries::default();
    let tls_writes = tls_writes_read(policy.proof.tls, &mut probes);
    if tls_writes != TlsProof::Off {
        tls_libraries.discover(&mut probes);
    }
    let mut tracker = ProcessTracker::new(ticks_per_second(), Some("/proc".into()));
    tracker
        .seed_from_procfs(&policy, &mut catalog)
        .context("reading /proc")?;
    // Loading parsed the kernel's BTF twice (several MiB, freed since); give those pages back
    // rather than keep them resident for the whole run.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    let Maps {
        events,
        critical,
        watched,
        counters,
        enforcement,
        readers,
    } = maps;
    let mut kernel = KernelCatalog::new(
        watched,
        enforcement,
        ReadersMap::new(readers),
        &policy,
        dry_run_enforce,
        probes.read_denial(),
    );
    let register =
        |ring| readiness::register_readable(ring).context("registering a ring buffer with tokio");
    let mut rings = Rings {
        bulk: register(events)?,
        critical: register(critical)?,
    };

    let mut watcher = Watcher::new().context("starting inotify")?;
    kernel.sync(&mut catalog, &policy, &mut probes, &mut watcher);
    // After the sync that attached the exec hook of contexts, where policy needs them: a
    // process that exec'd since keeps the context the kernel gave it.
    kernel.seed_contexts(&tracker.context_labels());
    // Everything that needed root is done: attaching, mounting, the first look at the homes.
    match privileges::drop_to_kept() {
        Ok(()) => log::debug!("capabilities dropped to {:#x}", privileges::KEPT),
        Err(e) => log::warn!("keeping all capabilities: dropping them failed: {e}"),
    }

    // Before `ready`: a signal right after it must stop us cleanly, not kill us. SIGQUIT stops
    // as SIGTERM does (its default is a core dump, and ours would hold environments); SIGHUP,
    // whose default would end us, reloads the policy.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigquit = signal(SignalKind::quit())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let ready = Record::Ready {
        time: clock.current(),
        version: env!("CARGO_PKG_VERSION").into(),
        hooks: probes.hooks.clone(),
        tls_libraries: tls_libraries.hooked(),
        tls_writes: tls_writes.name().into(),
        policy: policy_source.describe(),
        enforcement: kernel.report(),
        fingerprints: if policy.fleet.key_file.is_some() {
            "fleet".into()
        } else {
            "host-local".into()
        },
        credentials: catalog.credentials().count(),
        processes: tracker.len(),
    };
    if let Some(metrics) = &metrics {
        metrics.observe(std::slice::from_ref(&ready));
    }
    sink.write(&ready)?;
    sink.flush()?;
    let mut writer = Writer::spawn(sink, metrics.clone())?;
    if let Some(metrics) = &metrics {
        metrics.set_credentials(catalog.credentials().count());
        metrics.set_processes(tracker.len());
    }
    log::info!(
        "watching {} credentials; stop with Ctrl-C",
        catalog.credentials().count()
    );
    notify::notify(&format!(
        "READY=1\nSTATUS=watching {} credentials",
        catalog.credentials().count()
    ));

    let resolvers = Resolvers::system(policy.names.resolvers.clone());
    log::info!(
        "DNS answers name endpoints when they come from: {}",
        resolvers.describe()
    );
    let mut pipeline = Pipeline::new(tracker, clock, Arc::clone(&policy), resolvers);
    let mut last_workspace_refresh = std::time::Instant::now();
    pipeline.seed_workspaces(&mut catalog);
    if catalog.take_changed() {
        kernel.sync(&mut catalog, &policy, &mut probes, &mut watcher);
    }
    let mut counts = SourceCounts::default();
    let mut tick = tokio::time::interval(DRAIN_TICK);
    let mut ticks = 0u32;
    let mut last_readers_scan = std::time::Instant::now();
    // Stats while running, so loss shows while it happens. A zero interval: at stop only.
    let stats_while_running = !stats_interval.is_zero();
    let mut stats_tick = tokio::time::interval(stats_interval.max(DRAIN_TICK));
    stats_tick.tick().await; // the first tick is at once
    let mut lost_before = 0;
    let mut missed_before = 0;
    // Events left in the rings when the last drain reached its budget.
    let mut backlog = false;

    // A write error is the output gone (a closed pipe, a full disk): keytrail stops, and says
    // what it saw in the log instead.
    let mut output_error = None;
    loop {
        enum Wake {
            Data,
            Tick,
            Catalog,
            Hangup,
            Stats,
            Stop,
        }
        // Biased, in this order: under a flood the rings are always ready, and signals, stats,
        // catalog changes and sweeps must still come between bounded drains.
        let wake = tokio::select! {
            biased;
            _ = sigint.recv() => Wake::Stop,
            _ = sigterm.recv() => Wake::Stop,
            _ = sigquit.recv() => Wake::Stop,
            _ = sighup.recv() => Wake::Hangup,
            _ = stats_tick.tick(), if stats_while_running => Wake::Stats,
            changed = watcher.changed() => { changed?; Wake::Catalog }
            _ = tick.tick() => Wake::Tick,
            ready = rings.critical.readable_mut() => { ready?.clear_ready(); Wake::Data }
            ready = rings.bulk.readable_mut() => { ready?.clear_ready(); Wake::Data }
            _ = std::future::ready(()), if backlog => Wake::Data,
        };
        match drain(
            &mut rings,
            DRAIN_BUDGET,
            &mut pipeline,
            &mut catalog,
            &mut counts,
            &mut writer,
            (tls_writes != TlsProof::Off).then_some((&mut tls_libraries, &mut probes)),
        ) {
            Ok(more) => backlog = more,
            Err(e) => {
                output_error = Some(e);
                break;
            }
        }
        // An agent started in a new workspace, or the last left one. At most every
        // WORKSPACE_REFRESH: agents that hop between directories must not make keytrail
        // resolve its whole catalog between every two drains.
        if last_workspace_refresh.elapsed() >= WORKSPACE_REFRESH && catalog.take_changed() {
            last_workspace_refresh = std::time::Instant::now();
            kernel.sync(&mut catalog, &policy, &mut probes, &mut watcher);
        }
        match wake {
            Wake::Stop => break,
            Wake::Hangup => {
                if let Some(reopen) = &reopen_output {
                    reopen.store(true, std::sync::atomic::Ordering::Release);
                }
                reload(
                    &policy_source,
                    &mut policy,
                    dry_run_enforce,
                    Reloaded {
                        pipeline: &mut pipeline,
                        catalog: &mut catalog,
                        homes: &homes,
                        kernel: &mut kernel,
                        probes: &mut probes,
                        watcher: &mut watcher,
                    },
                );
            }
            Wake::Stats => {
                read_kernel_counts(&counters, &mut counts);
                counts.secrets_forgotten = catalog.secrets().forgotten();
                counts.missed_runs = probes.missed_runs();
                if counts.missed_runs > missed_before {
                    log::warn!(
                        "{} runs of keytrail's kernel programs skipped in the last {}: the \
                         program was busy on that CPU (preempted inside it); an access there \
                         was not seen",
                        counts.missed_runs - missed_before,
                        humantime::format_duration(stats_interval)
                    );
                    missed_before = counts.missed_runs;
                }
                let lost = counts.ringbuf_full - lost_before;
                if lost > 0 {
                    log::warn!(
                        "{lost} kernel events lost in the last {}: a ring buffer was full",
                        humantime::format_duration(stats_interval)
                    );
                    lost_before = counts.ringbuf_full;
                }
                let mut records = Vec::new();
                pipeline.blind(lost, clock.current(), catalog.secrets(), &mut records);
                records.push(pipeline.stats(clock.current(), counts));
                if let Some(metrics) = &metrics {
                    metrics.set_credentials(catalog.credentials().count());
                    metrics.set_processes(pipeline.tracked_processes());
                }
                if let Err(e) = writer.send(records) {
                    output_error = Some(e);
                    break;
                }
            }
            Wake::Catalog => kernel.sync(&mut catalog, &policy, &mut probes, &mut watcher),
            Wake::Tick => {
                ticks += 1;
                if ticks.is_multiple_of(SWEEP_EVERY_TICKS) {
                    pipeline.sweep(clock::boot_ns(), Timestamp::now());
                    probes.sweep_tls(|pid, start| pipeline.tracks(ProcKey { pid, start }));
                    kernel.reread_resolvers();
                    if last_readers_scan.elapsed() >= read_denial::RESCAN {
                        last_readers_scan = std::time::Instant::now();
                        kernel.refresh_readers();
                    }
                    pipeline.sweep_workspaces(&mut catalog);
                    let appeared = homes.appeared();
                    if !appeared.is_empty() {
                        log::info!(
                            "new home directories, looking for credentials in them: {}",
                            appeared
                                .iter()
                                .map(|h| h.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        catalog.add_homes(&policy, &appeared);
                        kernel.sync(&mut catalog, &policy, &mut probes, &mut watcher);
                    }
                }
            }
            Wake::Data => {}
        }
    }

    log::info!("stopping: detaching probes and draining what is left");
    notify::notify("STOPPING=1");
    log_run_statistics(&probes);
    counts.missed_runs = probes.missed_runs();
    drop(probes);
    if output_error.is_none()
        && let Err(e) = drain(
            &mut rings,
            usize::MAX,
            &mut pipeline,
            &mut catalog,
            &mut counts,
            &mut writer,
            None,
        )
    {
        output_error = Some(e);
    }
    let mut held_back = Vec::new();
    pipeline.finish(&mut held_back);
    read_kernel_counts(&counters, &mut counts);
    pipeline.blind(
        counts.ringbuf_full - lost_before,
        clock.current(),
        catalog.secrets(),
        &mut held_back,
    );
    counts.secrets_forgotten = catalog.secrets().forgotten();
    let stats = pipeline.stats(clock.current(), counts);
    if let Some(e) = output_error {
        log::error!(
            "the output failed ({e}); {}",
            serde_json::to_string(&stats).unwrap_or_default()
        );
        return Err(OutputClosed(e).into());
    }
    held_back.push(stats);
    writer.send(held_back)?;
    writer.finish()?;
    if counts.ringbuf_full > 0 {
        log::warn!(
            "{} kernel events were lost because the ring buffer was full",
            counts.ringbuf_full
        );
    }
    Ok(())
}

/// What the kernel counted of the events it could not send and the packets it could not parse.
fn read_kernel_counts(counters: &Counters, counts: &mut SourceCounts) {
    counts.ringbuf_full = counters.ringbuf_full();
    counts.critical_full = counters.critical_full();
    counts.critical_demoted = counters.get(counter::CRITICAL_DEMOTED);
    counts.packets_unparsed = counters.get(counter::PACKET_UNPARSED);
    counts.dns_unsolicited = counters.get(counter::DNS_UNSOLICITED);
    counts.sockets_unmarked = counters.get(counter::SOCKETS_UNMARKED);
}

/// Records could no longer be written: the stats record went to the log instead.
#[derive(Debug, thiserror::Error)]
#[error("the output failed; keytrail stopped")]
pub struct OutputClosed(#[source] pub std::io::Error);

/// Whose TLS writes are read, as policy asks where this host allows it: scoped to holders
/// needs tracefs, without which every process's are read (proof is kept, at its cost).
fn tls_writes_read(asked: TlsProof, probes: &mut Probes) -> TlsProof {
    match asked {
        TlsProof::Off => {
            log::info!(
                "proof of use over TLS is off ([proof] tls = \"off\"): those uses are inferred"
            );
            TlsProof::Off
        }
        TlsProof::All => TlsProof::All,
        TlsProof::Holders if perf_event_paranoid() > 2 => {
            log::warn!(
                "proof of use: TLS writes cannot be read from credential holders only: \
                 kernel.perf_event_paranoid is above 2 (Debian's default), where following a \
                 process takes CAP_SYS_ADMIN, which keytrail gives up after start; every \
                 process's are read (set it to 2 to follow holders only)"
            );
            TlsProof::All
        }
        TlsProof::Holders => match probes.scope_tls_writes_to_holders() {
            Ok(()) => TlsProof::Holders,
            Err(why) => {
                log::warn!(
                    "proof of use: TLS writes cannot be read from credential holders only \
                     ({why}); every process's are read"
                );
                TlsProof::All
            }
        },
    }
}

/// What a policy reload brings in line.
struct Reloaded<'a> {
    pipeline: &'a mut Pipeline,
    catalog: &'a mut Catalog,
    homes: &'a Homes,
    kernel: &'a mut KernelCatalog,
    probes: &'a mut Probes,
    watcher: &'a mut Watcher,
}

/// SIGHUP: reads the policy again from `source`. A policy that does not check out is refused
/// (its file, line and field in the log) and `policy` stays; a good one replaces it, and the
/// pipeline, the catalog and the kernel's maps follow it, keeping what they remember.
fn reload(source: &PolicySource, policy: &mut Arc<Policy>, dry_run_flag: bool, r: Reloaded) {
    notify::notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}",
        notify::monotonic_usec()
    ));
    let new = match source.load() {
        Ok(new) => new,
        Err(e) => {
            log::error!("SIGHUP: policy not reloaded, the running one stays: {e}");
            notify::notify("READY=1\nSTATUS=policy not reloaded (see the log)");
            return;
        }
    };
    warn_what_takes_a_restart(policy, &new);
    *policy = Arc::new(new);
    r.pipeline.set_policy(Arc::clone(policy));
    r.catalog.reload_policy(policy, r.homes.present());
    r.kernel.reconfigure(policy, dry_run_flag);
    r.kernel.sync(r.catalog, policy, r.probes, r.watcher);
    log::info!(
        "SIGHUP: policy reloaded from {}; watching {} credentials",
        source.describe(),
        r.catalog.credentials().count()
    );
    notify::notify(&format!(
        "READY=1\nSTATUS=watching {} credentials",
        r.catalog.credentials().count()
    ));
}

/// What a reload does not change, said in the log: whose TLS writes are read (the uprobes are
/// set at start) and the resolvers that name endpoints.
fn warn_what_takes_a_restart(running: &Policy, new: &Policy) {
    if running.fleet.key_file != new.fleet.key_file {
        log::warn!("SIGHUP: [fleet] key_file changed: it takes effect at the next start");
    }
    if running.proof.tls != new.proof.tls {
        log::warn!("SIGHUP: [proof] tls changed: it takes effect at the next start");
    }
    if running.names.resolvers != new.names.resolvers {
        log::warn!(
            "SIGHUP: [names] resolvers changed: enforcement trusts them now; endpoint names \
             take them at the next start"
        );
    }
}

/// Raises the soft limit on open descriptors to the hard one: following credential holders'
/// TLS writes takes a descriptor per process and hooked function (tls_holders.rs), and the
/// catalog, /proc and the TLS libraries need theirs too (systemd's soft limit is 1,024).
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                log::warn!(
                    "raising the descriptor limit: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// `kernel.perf_event_paranoid` (2, upstream's default, when unreadable).
fn perf_event_paranoid() -> i32 {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(2)
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// Buffered stdout; the loop flushes after each batch of records.
pub fn stdout() -> Box<dyn Write + Send> {
    Box::new(std::io::BufWriter::new(std::io::stdout()))
}

/// Runs the kernel skipped because the program was already busy on that CPU (always counted),
/// and with `sysctl kernel.bpf_stats_enabled=1` (off by default: it costs two clock reads per
/// run) each program's runs and run time: say them, by hook, at stop.
fn log_run_statistics(probes: &Probes) {
    let enabled = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .is_ok_and(|v| v.trim() == "1");
    for s in probes.run_statistics() {
        if s.missed > 0 {
            log::warn!(
                "{} missed {} runs: the kernel skips a program already running on that CPU \
                 (one preempted inside it, on a preemptible kernel), and an access there is not seen",
                s.hooks,
                s.missed
            );
        }
        if enabled {
            let mean = s.run_time.as_nanos() / u128::from(s.runs.max(1));
            log::info!(
                "kernel statistics: {} ran {} times, {mean} ns each on average, missed {}",
                s.hooks,
                s.runs,
                s.missed
            );
        }
    }
}
