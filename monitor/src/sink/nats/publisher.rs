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
        let counters = Arc::clone(&counters);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("keytrail-nats".into())
            .spawn(move || {
                // Capabilities are each thread's own, and this one starts before the daemon
                // gives up what it needs only to load. It needs none (it talks to the network
                // and reads only root's own files), and it is the one that parses what a
                // server sends: it gives them all up.
                if let Err(e) = crate::privileges::drop_all() {
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
                runtime.block_on(run(connection, reader, &counters, &stopping));
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

async fn run(
    connection: Connection,
    mut reader: SpoolReader,
    counters: &Counters,
    stop: &AtomicBool,
) {
    let mut stream: Option<jetstream::Context> = None;
    let mut said_commit = false;
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
            Sent::Done { refused } => {
                if !refused.is_empty() {
                    // Never accepted however often sent: counted as dropped, said, passed.
                    counters
                        .dropped
                        .fetch_add(refused.len() as u64, Ordering::Relaxed);
                    let (n, why) = &refused[0];
                    log::warn!(
                        "NATS: the stream refused {} records for good (the first, {}: {why}); \
                         they are dropped and counted (stats.fleet.spool_dropped)",
                        refused.len(),
                        frames[*n].subject
                    );
                }
                // Retried until it holds (a full disk may free up), or keytrail stops: the
                // batch then goes again at the next start, and JetStream drops it by id.
                while let Err(e) = reader.commit(pending, frames.len() - refused.len()) {
                    if !said_commit {
                        log::error!("NATS: cannot record the spool's position ({e}); trying again");
                        said_commit = true;
                    }
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                said_commit = false;
            }
            Sent::Outage(e) => {
                // Sent again from the same place: JetStream drops what it already has by id.
                if away_since.is_none() {
                    log::warn!(
                        "NATS at {} does not answer (a batch went unacknowledged: {e}); records \
                         wait in the spool",
                        connection.url
                    );
                }
                away_since.get_or_insert_with(Instant::now);
                stream = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A client and the stream, made if missing.
async fn connect(connection: &Connection) -> Result<jetstream::Context, async_nats::Error> {
    // Only the server named: one it advertises could be anyone's, and would get the
    // credentials.
    let mut options = async_nats::ConnectOptions::new()
        .name("keytrail")
        .connection_timeout(Duration::from_secs(5))
        .ignore_discovered_servers();
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
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: connection.stream.clone(),
            subjects: vec![format!("{}.>", super::SUBJECT_PREFIX)],
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await?;
    // A stream made by someone else: a resend after a restart or an outage longer than its
    // window is stored twice.
    let window = stream.cached_info().config.duplicate_window;
    if window < DUPLICATE_WINDOW {
        log::warn!(
            "NATS: stream {} drops repeated message ids for {}s only (keytrail makes it {}s): \
             a resend after a longer outage or stop is stored twice",
            connection.stream,
            window.as_secs(),
            DUPLICATE_WINDOW.as_secs()
        );
    }
    Ok(js)
}

/// What became of a batch.
enum Sent {
    /// Every frame acknowledged, but these, which the stream refused for good (too large, a
    /// subject it does not take, ...): never accepted however often sent.
    Done { refused: Vec<(usize, String)> },
    /// The server is away or slow: send the whole batch again later.
    Outage(String),
}

/// Publishes `frames`, then awaits the acknowledgements, all within one `ACK_TIMEOUT`.
async fn send(js: &jetstream::Context, frames: &[super::spool::Frame]) -> Sent {
    use jetstream::context::PublishErrorKind as Kind;
    // The stream gone (an operator deleted it) is an outage too: the reconnect makes it again.
    let outage = |kind: &Kind| {
        matches!(
            kind,
            Kind::TimedOut | Kind::BrokenPipe | Kind::MaxAckPending | Kind::StreamNotFound
        )
    };
    let mut refused = Vec::new();
    let mut acks = Vec::with_capacity(frames.len());
    for (n, frame) in frames.iter().enumerate() {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", frame.id.as_str());
        match js
            .publish_with_headers(frame.subject.clone(), headers, frame.payload.clone().into())
            .await
        {
            Ok(ack) => acks.push((n, ack)),
            Err(e) if outage(&e.kind()) => return Sent::Outage(e.to_string()),
            Err(e) => refused.push((n, e.to_string())),
        }
    }
    let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
    for (n, ack) in acks {
        match tokio::time::timeout_at(deadline, ack.into_future()).await {
            Err(_) => return Sent::Outage("no acknowledgement within 5 s".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) if outage(&e.kind()) => return Sent::Outage(e.to_string()),
            Ok(Err(e)) => refused.push((n, e.to_string())),
        }
    }
    Sent::Done { refused }
}
