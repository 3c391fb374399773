use std::io::{self, Write};

use super::Sink;
use crate::{
    record::{EndpointRef, ProcessRef, Record},
    vocab::HostSource,
};

/// One line per record: `TIME  KIND  what happened`.
pub struct TextSink<W> {
    out: W,
    colour: bool,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W, colour: bool) -> Self {
        Self { out, colour }
    }

    fn label(&self, text: &str, ansi: &str) -> String {
        if self.colour {
            format!("\x1b[{ansi}m{text:<10}\x1b[0m")
        } else {
            format!("{text:<10}")
        }
    }
}

fn process(p: &ProcessRef) -> String {
    let login = p.loginuid.map_or_else(|| "-".to_owned(), |l| l.to_string());
    format!(
        "{}[{}] (ppid {}, uid {}, login {}, {})",
        p.comm, p.pid, p.ppid, p.uid, login, p.context
    )
}

fn endpoint(e: &EndpointRef) -> String {
    let source = match e.host_source {
        Some(HostSource::TlsSni) => " (sni)",
        Some(HostSource::Dns) => " (dns)",
        None => "",
    };
    let host = e
        .host
        .as_deref()
        .map(|h| format!("{h}{source} "))
        .unwrap_or_default();
    let protocol = serde_json::to_value(e.protocol)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned));
    if e.ip.contains(':') {
        format!(
            "{host}[{}]:{}/{}",
            e.ip,
            e.port,
            protocol.unwrap_or_default()
        )
    } else {
        format!("{host}{}:{}/{}", e.ip, e.port, protocol.unwrap_or_default())
    }
}

impl<W: Write> Sink for TextSink<W> {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        let line = match record {
            Record::Ready {
                time,
                hooks,
                credentials,
                processes,
                ..
            } => {
                let hooks: Vec<&str> = hooks.iter().map(|h| h.hook.as_str()).collect();
                format!(
                    "{time} {} watching {credentials} credentials, {processes} processes; hooks: {}",
                    self.label("ready", "1;32"),
                    hooks.join(", ")
                )
            }
            Record::CredentialAccess {
                time,
                credential,
                process: p,
                hook,
            } => format!(
                "{time} {} {} ({}) read by {} via {hook:?}",
                self.label("access", "1;33"),
                credential.path,
                credential.kind,
                process(p),
            ),
            Record::Connection {
                time,
                process: p,
                endpoint: e,
            } => {
                format!(
                    "{time} {} {} -> {}",
                    self.label("connect", "36"),
                    process(p),
                    endpoint(e)
                )
            }
            Record::CredentialUse {
                time,
                credential,
                process: p,
                endpoint: e,
                via,
                reader,
            } => format!(
                "{time} {} {} ({}) used by {} -> {} (read by {}[{}], {via:?})",
                self.label("use", "1;35"),
                credential.path,
                credential.kind,
                process(p),
                endpoint(e),
                reader.comm,
                reader.pid,
            ),
            Record::Finding(f) => {
                let severity = serde_json::to_value(f.severity)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_uppercase))
                    .unwrap_or_default();
                let agent = f
                    .agent
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), |a| format!("{}[{}]", a.name, a.pid));
                let count = if f.count > 1 {
                    format!(" (x{})", f.count)
                } else {
                    String::new()
                };
                format!(
                    "{} {} {severity} {}: {}{count} [user {} agent {agent} context {}; {} evidence records]",
                    f.time,
                    self.label("FINDING", "1;31"),
                    f.rule,
                    f.summary,
                    f.user,
                    f.context,
                    f.evidence.len()
                )
            }
            Record::Stats {
                time,
                events,
                dropped,
                findings,
                names,
                ..
            } => format!(
                "{time} {} {events} events, {dropped} dropped, {findings} findings; \
                 {} DNS answers ({} malformed, {} truncated), {} TLS server names",
                self.label("stats", "1"),
                names.dns_answers,
                names.dns_malformed,
                names.dns_truncated,
                names.tls_server_names,
            ),
        };
        writeln!(self.out, "{line}")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
