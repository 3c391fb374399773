//! Sends the spool to a NATS JetStream stream, on a thread of its own: batches in order, each
//! record with its `Nats-Msg-Id`, the position moved on only once the stream acknowledged the
//! whole batch. A server that is away is tried again every second, said once in the log when
//! it goes and once when it is back; meanwhile records wait in the spool.
use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use async_nats::{HeaderMap, jetstream};

use super::{
    Connection,
    spool::{Counters, SpoolReader},
};

/// Records sent before their acknowledgements are awaited.
const BATCH: usize = 256;
/// How long an acknowledgement may take before the server counts as away.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long keytrail waits at stop for the spool to empty; what is left is sent at the next
/// start.
const DRAIN_AT_STOP: Duration = Duration::from_secs(5);
/// JetStream drops a message whose id it saw this recently: longer than any outage a resend
/// follows (a restart's, a reconnect's).
const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);

pub struct Publisher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    pub fn spawn(
        connection: Connection,
        spool: PathBuf,
        counters: Arc<Counters>,
    ) -> std::io::Result<Self> {
        let reader = SpoolReader::open(&spool, Arc::clone(&counters))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("keytrail-nats".into())
            .spawn(move || {
                // Capabilities are each thread's own, and this one starts before the daemon
                // gives up what it needs only to load: it gives them up itself (it talks to the
                // network, and reads only root's own files).
                if let Err(e) = crate::privileges::drop_to_kept() {
                    log::warn!(
                        "NATS publisher: keeping all capabilities: dropping them failed: {e}"
                    );
                }
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        log::error!(
                            "NATS: cannot start the publisher: {e}; records stay in the spool"
                        );
                        return;
                    }
                };
                runtime.block_on(run(connection, reader, &stopping));
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Sends what is left (for `DRAIN_AT_STOP` at most) and stops.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run(connection: Connection, mut reader: SpoolReader, stop: &AtomicBool) {
    let mut stream: Option<jetstream::Context> = None;
    let mut away_since: Option<Instant> = None;
    let mut stop_deadline: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Acquire) {
            let deadline = *stop_deadline.get_or_insert_with(|| Instant::now() + DRAIN_AT_STOP);
            if Instant::now() >= deadline {
                log::warn!(
                    "NATS: stopping with records not yet acknowledged; they stay in the spool \
                     and are sent at the next start"
                );
                return;
            }
        }
        let Some(js) = &stream else {
            match connect(&connection).await {
                Ok(js) => {
                    if let Some(since) = away_since.take() {
                        log::info!(
                            "NATS at {} answers again (away {}s); sending the spool",
                            connection.url,
                            since.elapsed().as_secs()
                        );
                    }
                    stream = Some(js);
                }
                Err(e) => {
                    if away_since.is_none() {
                        log::warn!(
                            "NATS at {} does not answer ({e}); records wait in the spool",
                            connection.url
                        );
                        away_since = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            continue;
        };
        let (frames, pending) = match reader.peek(BATCH) {
            Ok(read) => read,
            Err(e) => {
                log::error!("NATS: the spool cannot be read ({e}); the publisher stops");
                return;
            }
        };
        if frames.is_empty() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        match send(js, &frames).await {
            Ok(()) => {
                if let Err(e) = reader.commit(pending, frames.len()) {
                    log::error!(
                        "NATS: cannot record the spool's position ({e}); the publisher stops"
                    );
                    return;
                }
            }
            Err(e) => {
                // Sent again from the same place: JetStream drops what it already has by id.
                log::warn!(
                    "NATS at {} does not answer (a batch went unacknowledged: {e}); records \
                     wait in the spool",
                    connection.url
                );
                away_since = Some(Instant::now());
                stream = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A client and the stream, made if missing.
async fn connect(connection: &Connection) -> Result<jetstream::Context, async_nats::Error> {
    let mut options = async_nats::ConnectOptions::new()
        .name("keytrail")
        .connection_timeout(Duration::from_secs(5));
    if let Some(file) = &connection.creds_file {
        options = options.credentials_file(file).await?;
    }
    if let Some((user, password)) = &connection.user_password {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(ca) = &connection.tls_ca_file {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    let client = options.connect(connection.url.as_str()).await?;
    let js = jetstream::new(client);
    js.get_or_create_stream(jetstream::stream::Config {
        name: connection.stream.clone(),
        subjects: vec![format!("{}.>", super::SUBJECT_PREFIX)],
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await?;
    Ok(js)
}

/// Publishes `frames`, then awaits every acknowledgement.
async fn send(
    js: &jetstream::Context,
    frames: &[super::spool::Frame],
) -> Result<(), async_nats::Error> {
    let mut acks = Vec::with_capacity(frames.len());
    for frame in frames {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", frame.id.as_str());
        acks.push(
            js.publish_with_headers(frame.subject.clone(), headers, frame.payload.clone().into())
                .await?,
        );
    }
    for ack in acks {
        tokio::time::timeout(ACK_TIMEOUT, ack.into_future())
            .await
            .map_err(|_| "no acknowledgement within 5 s")??;
    }
    Ok(())
}
