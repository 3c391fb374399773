//! Draining the two ring buffers: events go through the pipeline oldest first across both, at
//! most a budget at a time, and the records they make go to the writer in batches.
use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use crate::{
    catalog::Catalog,
    clock,
    decode::{self, KernelEvent, PayloadKind},
    kernel::{
        probes::Probes,
        tls_libraries::{TlsLibraries, TlsWrites},
    },
    pipeline::{Pipeline, SourceCounts},
    proof,
    sink::Writer,
    vocab::{Enforced, Hook, Protocol},
};

/// The TLS libraries found so far, and the probes that hook new ones (None at stop, when the
/// probes are gone).
pub type Discovery<'a> = Option<(&'a mut TlsLibraries, &'a mut Probes)>;

/// Records handed to the writer at once, at most: a backlog is written as it is worked through.
/// A record waits for its batch to fill, so this bounds the lag a busy drain adds: 128 records
/// are ~2 ms at 70,000 a second (512 were ~7 ms, 4,096 ~60 ms, most of the p99 lag under a
/// storm). The writer flushes once per batch: a few hundred writes a second at that rate.
const BATCH: usize = 128;

/// Events handled in one drain at most: under a flood the loop gets back to signals, stats,
/// catalog changes and sweeps between drains (a few milliseconds of work each).
pub const DRAIN_BUDGET: usize = 4096;

/// The two ring buffers (kernel/probes: `Maps`), registered with tokio.
pub struct Rings {
    pub bulk: AsyncFd<RingBuf<MapData>>,
    pub critical: AsyncFd<RingBuf<MapData>>,
}

/// Moves pending kernel events through the correlator, oldest first across both rings, and
/// writes the records they make; at most `budget` events. Returns whether it stopped at the
/// budget (events may be left).
pub fn drain(
    rings: &mut Rings,
    budget: usize,
    pipeline: &mut Pipeline,
    catalog: &mut Catalog,
    counts: &mut SourceCounts,
    writer: &mut Writer,
    mut discovery: Discovery,
) -> std::io::Result<bool> {
    let (bulk, critical) = (rings.bulk.get_mut(), rings.critical.get_mut());
    // The next event of each ring, decoded: each ring is in the kernel's order, and the older
    // of the two goes first, so an exec (bulk) is handled before the read (critical) it precedes.
    let mut heads: [Option<KernelEvent>; 2] = [None, None];
    let mut records = Vec::new();
    let mut handled = 0;
    loop {
        if handled < budget {
            if heads[0].is_none() {
                heads[0] = next_event(bulk, counts);
            }
            if heads[1].is_none() {
                heads[1] = next_event(critical, counts);
            }
        }
        let pick = match (&heads[0], &heads[1]) {
            (None, None) => break,
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (Some(b), Some(c)) => usize::from(c.boot_ns() < b.boot_ns()),
        };
        let Some(event) = heads[pick].take() else {
            break;
        };
        if let Some((libraries, probes)) = discovery.as_mut() {
            discover(&event, libraries, probes, pipeline);
        }
        pipeline.handle(&event, catalog, &mut records);
        wipe(event);
        handled += 1;
        if records.len() >= BATCH {
            writer.send(std::mem::take(&mut records))?;
        }
    }
    pipeline.tick(clock::boot_ns(), &mut records);
    writer.send(records)?;
    Ok(handled >= budget)
}

/// Finds TLS libraries as processes show them (tls_libraries.rs), and tells the pipeline
/// whose TLS writes are read.
fn discover(
    event: &KernelEvent,
    libraries: &mut TlsLibraries,
    probes: &mut Probes,
    pipeline: &mut Pipeline,
) {
    match event {
        KernelEvent::Connect(c) if c.protocol == Protocol::Tcp => {
            // A process gone before its mappings were read may have written through a hooked
            // library: its connections wait for a request until its exit is handled.
            if libraries.on_connect(c.pid, probes) != TlsWrites::Unread {
                pipeline.writes_tls(c.pid);
            }
        }
        KernelEvent::Payload(p) if p.kind == PayloadKind::TlsHello => libraries.on_hello(p.pid),
        // A credential read: the reader (with the children it starts from now on) and the
        // ancestors the rules count as using it become holders, whose TLS writes are read from
        // now on (where only holders' are).
        KernelEvent::FileAccess {
            pid,
            enforcement,
            hook,
            ..
        } if *enforcement != Some(Enforced::Denied) && *hook != Hook::Move => {
            for holder in pipeline.holders_by_reading(*pid) {
                probes.follow_tls(holder.pid, holder.start, holder.pid == *pid);
            }
        }
        KernelEvent::Exec(e) => libraries.forget(e.pid),
        // Holders are let go by the sweep (daemon): a reader's children keep its events.
        KernelEvent::Exit { pid, .. } => libraries.forget(*pid),
        _ => {}
    }
}

/// The next event `ring` holds, decoded; events that do not decode are counted and skipped.
fn next_event(ring: &mut RingBuf<MapData>, counts: &mut SourceCounts) -> Option<KernelEvent> {
    loop {
        let item = ring.next()?;
        counts.events += 1;
        match decode::decode(&item) {
            Ok(event) => return Some(event),
            Err(e) => {
                counts.undecodable += 1;
                log::warn!("dropped an event from the kernel: {e}");
            }
        }
    }
}

/// A request's bytes may hold secrets (proof of use reads them): they are overwritten before
/// the memory goes back to the allocator.
fn wipe(event: KernelEvent) {
    if let KernelEvent::Payload(mut payload) = event
        && payload.kind.is_request()
    {
        proof::wipe(&mut payload.data);
    }
}
