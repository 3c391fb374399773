//! `--nats URL`: every record also goes to a NATS JetStream stream, for the fleet view.
//!
//! A record goes to subject `keytrail.<host>.<type>` as its JSON contract form with `host`
//! added (the hostname and the machine id), and a `Nats-Msg-Id` unique to it
//! (`<machine-id>-<start>-<n>`), so a resend is never stored twice. It is appended to an
//! on-disk spool first (spool.rs); the publisher (publisher.rs) sends from there in order and
//! moves on only once the stream acknowledged. A bus that is away costs nothing but spool; a
//! full spool drops new records and counts them (`stats.fleet`). Credentials for the
//! connection come from files named in the policy, never from the command line.
mod publisher;
mod spool;

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

pub use spool::Counters;

use super::Sink;
use crate::record::{FleetCounts, Record};

/// Subjects begin with this; the stream takes `keytrail.>`.
const SUBJECT_PREFIX: &str = "keytrail";

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `nats://HOST:PORT` (or `tls://`), without credentials.
    pub url: String,
    pub stream: String,
    /// A NATS credentials file (JWT and nkey seed).
    pub creds_file: Option<PathBuf>,
    /// From a file holding `user:password`.
    pub user_password: Option<(String, String)>,
    /// The CA that signs the server's certificate (TLS is then required).
    pub tls_ca_file: Option<PathBuf>,
}

impl Connection {
    /// From `url` and the policy's `[fleet]` settings. A URL with credentials in it is refused:
    /// it would be on the command line, in every process listing.
    pub fn new(url: &str, fleet: &crate::policy::FleetSettings) -> Result<Self, String> {
        let rest = url
            .split_once("://")
            .filter(|(scheme, _)| ["nats", "tls"].contains(scheme))
            .ok_or_else(|| "--nats: expected nats://HOST:PORT or tls://HOST:PORT".to_owned())?
            .1;
        if rest.contains('@') {
            return Err(
                "--nats: the URL holds credentials; put them in a file the policy names \
                 ([fleet] user_password_file or creds_file), not on the command line"
                    .to_owned(),
            );
        }
        let user_password = match &fleet.user_password_file {
            Some(file) => Some(read_user_password(file)?),
            None => None,
        };
        if let Some(file) = &fleet.creds_file {
            root_only(file, 0o077, "[fleet] creds_file")?;
        }
        if let Some(file) = &fleet.tls_ca_file {
            root_only(file, 0o022, "[fleet] tls_ca_file")?;
        }
        if url.starts_with("nats://")
            && fleet.tls_ca_file.is_none()
            && (user_password.is_some() || fleet.creds_file.is_some())
        {
            log::warn!(
                "NATS: credentials over a plain connection (nats://, no [fleet] tls_ca_file): \
                 anyone on the path can read them"
            );
        }
        Ok(Self {
            url: url.to_owned(),
            stream: fleet.stream.clone(),
            creds_file: fleet.creds_file.clone(),
            user_password,
            tls_ca_file: fleet.tls_ca_file.clone(),
        })
    }
}

/// Refuses `file` unless it is a regular file of root's (not a link) without the mode bits in
/// `forbidden`: a file others may write (a CA) or read (credentials) is refused.
fn root_only(file: &Path, forbidden: u32, what: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::symlink_metadata(file).map_err(|e| format!("{what} {}: {e}", file.display()))?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & forbidden != 0 {
        return Err(format!(
            "{what} {}: must be a regular file, root's, mode {:04o} at most (it is uid {}, mode {:04o})",
            file.display(),
            0o666 & !forbidden,
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// `user:password` from the first line of `file`, which must be root's and 0600.
fn read_user_password(file: &Path) -> Result<(String, String), String> {
    let what = |why: &str| format!("[fleet] user_password_file {}: {why}", file.display());
    root_only(file, 0o077, "[fleet] user_password_file")?;
    let text = std::fs::read_to_string(file).map_err(|e| what(&e.to_string()))?;
    let line = text.lines().next().unwrap_or_default();
    let (user, password) = line
        .split_once(':')
        .ok_or_else(|| what("its first line must be user:password"))?;
    Ok((user.to_owned(), password.to_owned()))
}

/// This machine, as records on the bus name it.
struct Host {
    /// `"host":{...}` for the record's JSON.
    json: Vec<u8>,
    /// The hostname as one subject token.
    token: String,
    machine_id: String,
}

impl Host {
    fn here() -> Self {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let machine_id = std::fs::read_to_string("/etc/machine-id")
            .map(|m| m.trim().to_owned())
            .ok()
            .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| "unknown".into());
        let json = serde_json::to_vec(&serde_json::json!({
            "name": name,
            "machine_id": machine_id,
        }))
        .expect("plain strings");
        Self {
            json: [b"\"host\":".as_slice(), &json].concat(),
            token: subject_token(&name),
            machine_id,
        }
    }
}

/// `name` as one subject token: letters, digits, `-` and `_`; anything else (`.`, `*`, `>`,
/// spaces: a subject's syntax) becomes `_`.
fn subject_token(name: &str) -> String {
    let token: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if token.is_empty() {
        "unnamed".into()
    } else {
        token
    }
}

/// Records into the spool, for the publisher.
pub struct NatsSink {
    spool: spool::SpoolWriter,
    publisher: publisher::Publisher,
    counters: Arc<Counters>,
    host: Host,
    /// What makes this run's message ids its own.
    run: String,
    sent: u64,
    line: Vec<u8>,
    /// Drops said in the log so far.
    said_dropped: u64,
    /// A spool write failed, said once.
    said_spool_error: bool,
}

impl NatsSink {
    pub fn start(connection: Connection, spool_dir: &Path, spool_max: u64) -> io::Result<Self> {
        let counters = Arc::new(Counters::default());
        let spool =
            spool::SpoolWriter::open(spool_dir, spool_max, Arc::clone(&counters)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("the NATS spool {}: {e}", spool_dir.display()),
                )
            })?;
        let waiting = counters.fill();
        if waiting > 0 {
            log::info!(
                "NATS: {waiting} bytes of records from the last run wait in the spool; they go first"
            );
        }
        log::info!(
            "NATS: records go to stream {} at {} (spool {}, at most {} MiB)",
            connection.stream,
            connection.url,
            spool_dir.display(),
            spool_max >> 20
        );
        let publisher = publisher::Publisher::spawn(
            connection,
            spool_dir.to_path_buf(),
            Arc::clone(&counters),
        )?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // And a random part: a clock set back must not give a run another's ids (JetStream
        // would drop its records as duplicates).
        let mut nonce = [0u8; 8];
        io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut nonce)?;
        let host = Host::here();
        Ok(Self {
            run: format!(
                "{}-{started:x}-{:016x}",
                host.machine_id,
                u64::from_ne_bytes(nonce)
            ),
            spool,
            publisher,
            counters,
            host,
            sent: 0,
            line: Vec::with_capacity(1024),
            said_dropped: 0,
            said_spool_error: false,
        })
    }

    /// The publisher's counts, live (for `--metrics`).
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    pub fn counts(&self) -> FleetCounts {
        FleetCounts {
            published: self.counters.published.load(Ordering::Relaxed),
            spooled_bytes: self.counters.fill(),
            spool_dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Sink for NatsSink {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)?;
        // `{...}` becomes `{...,"host":{...}}`.
        if self.line.last() == Some(&b'}') {
            self.line.pop();
            self.line.push(b',');
            self.line.extend_from_slice(&self.host.json);
            self.line.push(b'}');
        }
        self.sent += 1;
        let frame = spool::Frame {
            subject: format!(
                "{SUBJECT_PREFIX}.{}.{}",
                self.host.token,
                record.type_name()
            ),
            id: format!("{}-{}", self.run, self.sent),
            payload: std::mem::take(&mut self.line),
        };
        // Findings and keytrail's own records go first when the spool is nearly full.
        let urgent = matches!(
            record,
            Record::Finding(_) | Record::Ready { .. } | Record::Stats { .. }
        );
        // The bus is an extra: its disk failing (full, say) must not stop keytrail, whose
        // primary output may be fine. The record is dropped and counted instead.
        if let Err(e) = self.spool.append(&frame, urgent) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.said_spool_error {
                log::error!(
                    "NATS: cannot write the spool ({e}); records for the bus are dropped and counted"
                );
                self.said_spool_error = true;
            }
        }
        self.line = frame.payload;
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped > self.said_dropped
            && (self.said_dropped == 0 || dropped >= 2 * self.said_dropped)
        {
            log::warn!("NATS: the spool is full; {dropped} records dropped so far (stats.fleet)");
            self.said_dropped = dropped;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Err(e) = self.spool.flush()
            && !self.said_spool_error
        {
            log::error!("NATS: cannot write the spool ({e}); records for the bus may be lost");
            self.said_spool_error = true;
        }
        Ok(())
    }
}

impl Drop for NatsSink {
    fn drop(&mut self) {
        let _ = self.spool.flush();
        self.publisher.finish();
        let counts = self.counts();
        log::info!(
            "NATS: {} records acknowledged, {} bytes left in the spool, {} dropped",
            counts.published,
            counts.spooled_bytes,
            counts.spool_dropped
        );
    }
}

/// The chosen output and the bus: each record to both, and a `stats` record completed with the
/// bus's counts first (they are the NATS sink's own).
pub struct WithNats {
    pub primary: Box<dyn Sink + Send>,
    pub nats: NatsSink,
}

impl Sink for WithNats {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        if let Record::Stats { .. } = record {
            let mut completed = record.clone();
            if let Record::Stats { fleet, .. } = &mut completed {
                *fleet = Some(self.nats.counts());
            }
            self.primary.write(&completed)?;
            return self.nats.write(&completed);
        }
        self.primary.write(record)?;
        self.nats.write(record)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.primary.flush()?;
        self.nats.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_become_one_subject_token() {
        assert_eq!(subject_token("node-1.example.com"), "node-1_example_com");
        assert_eq!(subject_token("a*b>c d"), "a_b_c_d");
        assert_eq!(subject_token(""), "unnamed");
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        let fleet = crate::policy::FleetSettings::default();
        let err = Connection::new("nats://user:secret@127.0.0.1:4222", &fleet).unwrap_err();
        assert!(
            err.contains("not on the command line") && !err.contains("secret"),
            "{err}"
        );
        assert!(Connection::new("http://127.0.0.1:4222", &fleet).is_err());
        assert!(Connection::new("nats://127.0.0.1:4222", &fleet).is_ok());
    }
}
