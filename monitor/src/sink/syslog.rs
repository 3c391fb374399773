//! Records to syslog (`--syslog`), one message each: over TCP to a collector
//! (`tcp:HOST:PORT`) as RFC 5424 with RFC 6587 octet counting, MSGID the record's type; over
//! the local daemon's Unix datagram socket (`unix:/dev/log`) in the local form every local
//! daemon parses (`<PRI>keytrail[PID]: MSG`, as glibc's syslog() sends without its timestamp:
//! rsyslog's imuxsock and journald stamp it on receipt; they do not parse RFC 5424 there). The
//! message is the record as `--format` writes it (NDJSON for a pipeline), the severity a
//! finding's own (others `info`), the facility `authpriv`: what a security monitor's messages
//! are. A record is formatted by the
//! same sinks as everywhere else, so every string in it is escaped as there: a process cannot
//! start a syslog message of its own.
//!
//! Sends time out after `SEND_TIMEOUT` (a local user flooding /dev/log must not stall the
//! writer, and through it the drain). A send that fails reconnects once and sends again
//! (rsyslog restarted, a collector's connection dropped); a record that still does not go is
//! dropped, said in the log and counted, and the next record tries again: keytrail goes on
//! monitoring while its collector is away. A record longer than `MAX_BODY` is cut (a datagram
//! past the socket's buffer could never be sent).
use std::{
    io::{self, Write},
    net::{TcpStream, ToSocketAddrs},
    os::unix::net::UnixDatagram,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{Format, Sink, for_format};
use crate::{record::Record, vocab::Severity};

/// Where syslog messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A local syslog daemon's datagram socket.
    Unix(PathBuf),
    /// A collector, `host:port`.
    Tcp(String),
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("unix", path)) if path.starts_with('/') => Ok(Target::Unix(path.into())),
            Some(("tcp", address))
                if address.rsplit_once(':').is_some_and(|(h, p)| {
                    !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0)
                }) =>
            {
                Ok(Target::Tcp(address.into()))
            }
            _ => Err(format!(
                "{s:?}: expected unix:/PATH (e.g. unix:/dev/log) or tcp:HOST:PORT"
            )),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
            Target::Tcp(address) => write!(f, "tcp:{address}"),
        }
    }
}

/// Longest a send may block.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest message body sent; longer ones are cut, marked ` [cut]`.
const MAX_BODY: usize = 64 * 1024;
/// How long after a failed reconnect the next is tried.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// `authpriv`: security and authorization messages, kept private by syslog daemons.
const FACILITY: u8 = 10;

enum Connection {
    Unix(UnixDatagram),
    Tcp(io::BufWriter<TcpStream>),
}

impl Connection {
    fn open(target: &Target) -> io::Result<Self> {
        Ok(match target {
            Target::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.connect(path)?;
                socket.set_write_timeout(Some(SEND_TIMEOUT))?;
                Connection::Unix(socket)
            }
            Target::Tcp(address) => {
                let to = address.to_socket_addrs()?.next().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "the name has no address")
                })?;
                let stream = TcpStream::connect_timeout(&to, SEND_TIMEOUT)?;
                stream.set_write_timeout(Some(SEND_TIMEOUT))?;
                stream.set_nodelay(true)?;
                Connection::Tcp(io::BufWriter::new(stream))
            }
        })
    }

    fn send(&mut self, message: &[u8]) -> io::Result<()> {
        match self {
            Connection::Unix(socket) => socket.send(message).map(drop),
            Connection::Tcp(stream) => {
                write!(stream, "{} ", message.len())?;
                stream.write_all(message)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Connection::Unix(_) => Ok(()),
            Connection::Tcp(stream) => stream.flush(),
        }
    }
}

/// What the record formatter writes into, shared with the sink that takes it out.
#[derive(Clone, Default)]
struct Formatted(Arc<Mutex<Vec<u8>>>);

impl Formatted {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Write for Formatted {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub struct SyslogSink {
    target: Target,
    connection: Connection,
    formatter: Box<dyn Sink + Send>,
    formatted: Formatted,
    /// HOSTNAME and PROCID, as RFC 5424 writes them.
    host: String,
    pid: u32,
    /// Records dropped because syslog could not take them (said at stop).
    dropped: u64,
    /// When the last reconnect failed: until `RETRY_AFTER` has passed, records are dropped
    /// without trying (a collector that is down must not cost every record a timeout).
    failed_at: Option<Instant>,
}

impl SyslogSink {
    /// Connects to `target`; records are written as `format` writes them (without colour).
    pub fn connect(target: Target, format: Format) -> io::Result<Self> {
        let connection = Connection::open(&target)?;
        let formatted = Formatted::default();
        Ok(Self {
            target,
            connection,
            formatter: for_format(format, Box::new(formatted.clone()), false),
            formatted,
            host: host_name(),
            pid: std::process::id(),
            dropped: 0,
            failed_at: None,
        })
    }

    /// One record's message: over TCP `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`,
    /// locally `<PRI>APP-NAME[PROCID]: MSG`.
    fn message(&self, record: &Record, body: &[u8]) -> Vec<u8> {
        let severity = match record {
            Record::Finding(f) => match f.severity {
                Severity::Critical => 2,
                Severity::High => 3,
                Severity::Medium => 4,
                Severity::Low => 5,
            },
            _ => 6,
        };
        let pri = FACILITY * 8 + severity;
        let mut message = match self.target {
            Target::Tcp(_) => format!(
                "<{pri}>1 {} {} keytrail {} {} - ",
                record.time(),
                self.host,
                self.pid,
                record.type_name()
            ),
            Target::Unix(_) => format!("<{pri}>keytrail[{}]: ", self.pid),
        }
        .into_bytes();
        message.extend_from_slice(body);
        message
    }
}

impl Sink for SyslogSink {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        self.formatter.write(record)?;
        self.formatter.flush()?;
        let mut body = self.formatted.take();
        while body.last() == Some(&b'\n') {
            body.pop();
        }
        if body.len() > MAX_BODY {
            // On a character boundary: the text stays UTF-8.
            let cut = (0..=MAX_BODY)
                .rev()
                .find(|&i| std::str::from_utf8(&body[..i]).is_ok())
                .unwrap_or(0);
            body.truncate(cut);
            body.extend_from_slice(b" [cut]");
        }
        let message = self.message(record, &body);
        if let Some(at) = self.failed_at {
            if at.elapsed() < RETRY_AFTER {
                self.dropped += 1;
                return Ok(());
            }
            match Connection::open(&self.target) {
                Ok(connection) => {
                    log::info!("syslog: {} answers again", self.target);
                    self.connection = connection;
                    self.failed_at = None;
                }
                Err(_) => {
                    self.failed_at = Some(Instant::now());
                    self.dropped += 1;
                    return Ok(());
                }
            }
        }
        if let Err(first) = self.connection.send(&message) {
            let again = Connection::open(&self.target).and_then(|mut c| {
                c.send(&message)?;
                Ok(c)
            });
            match again {
                Ok(connection) => {
                    self.connection = connection;
                    self.failed_at = None;
                }
                Err(e) => {
                    self.failed_at = Some(Instant::now());
                    if self.dropped == 0 {
                        log::warn!(
                            "syslog: a {} record could not be sent to {} ({first}; again: {e}); \
                             such records are dropped and counted until it answers",
                            record.type_name(),
                            self.target
                        );
                    }
                    self.dropped += 1;
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed_at.is_some() {
            return Ok(());
        }
        if let Err(e) = self.connection.flush() {
            // What the buffer held is lost with the connection: say so, and go on.
            log::warn!(
                "syslog: the connection to {} failed ({e}), with what it had not sent; \
                 reconnecting",
                self.target
            );
            match Connection::open(&self.target) {
                Ok(connection) => self.connection = connection,
                Err(e) => {
                    log::warn!(
                        "syslog: {} does not answer ({e}); records are dropped and counted \
                         until it does",
                        self.target
                    );
                    self.failed_at = Some(Instant::now());
                }
            }
        }
        Ok(())
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        if self.dropped > 0 {
            log::warn!(
                "syslog: {} records could not be sent to {}",
                self.dropped,
                self.target
            );
        }
    }
}

/// This host's name, printable ASCII with no spaces (RFC 5424's HOSTNAME), else `-`.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) && name.len() <= 255 {
        name.to_owned()
    } else {
        "-".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_say_what_is_expected() {
        assert_eq!("unix:/dev/log".parse(), Ok(Target::Unix("/dev/log".into())));
        assert_eq!(
            "tcp:127.0.0.1:601".parse(),
            Ok(Target::Tcp("127.0.0.1:601".into()))
        );
        assert_eq!("tcp:[::1]:601".parse(), Ok(Target::Tcp("[::1]:601".into())));
        for bad in [
            "/dev/log",
            "unix:dev/log",
            "tcp:host",
            "tcp::601",
            "tcp:h:0",
            "udp:h:514",
        ] {
            let error = bad.parse::<Target>().unwrap_err();
            assert!(error.contains("tcp:HOST:PORT"), "{bad}: {error}");
        }
    }
}
