//! Writing on a thread of its own: formatting records (JSON above all) is the daemon's largest
//! cost under load, and done on the drain loop it held the loop back while the kernel's ring
//! buffer filled. The channel is bounded, so a writer that cannot keep up (a slow pipe) slows
//! the drain, and what the kernel then cannot hold is counted as dropped, not kept in memory.
use std::{
    io,
    sync::mpsc::{Receiver, SyncSender, sync_channel},
    thread::JoinHandle,
};

use std::sync::Arc;

use super::{Sink, metrics::Metrics};
use crate::record::Record;

/// Batches waiting to be written, at most.
const QUEUE: usize = 256;

pub struct Writer {
    batches: Option<SyncSender<Vec<Record>>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// Counted as they go (`--metrics`).
    metrics: Option<Arc<Metrics>>,
}

impl Writer {
    pub fn spawn(sink: Box<dyn Sink + Send>, metrics: Option<Arc<Metrics>>) -> io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("keytrail-writer".into())
            .spawn(move || write_all(sink, rx))?;
        Ok(Self {
            batches: Some(tx),
            thread: Some(thread),
            metrics,
        })
    }

    /// Queues a batch; each batch is flushed once written. An error means the writer stopped
    /// (its reason comes from `finish`).
    pub fn send(&mut self, records: Vec<Record>) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some(metrics) = &self.metrics {
            metrics.observe(&records);
        }
        let sent = self.batches.as_ref().map(|tx| tx.send(records));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => self.finish(),
        }
    }

    /// Writes what is queued and stops; the first write error, if any.
    pub fn finish(&mut self) -> io::Result<()> {
        self.batches = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => {
                result?;
                Ok(())
            }
            Some(Err(_)) => Err(io::Error::other("the writer thread panicked")),
            None => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the writer has stopped",
            )),
        }
    }
}

fn write_all(mut sink: Box<dyn Sink + Send>, batches: Receiver<Vec<Record>>) -> io::Result<()> {
    for batch in batches {
        for record in &batch {
            sink.write(record)?;
        }
        sink.flush()?;
    }
    Ok(())
}
