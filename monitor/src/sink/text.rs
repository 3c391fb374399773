//! The text sink: one line per record, for people. Every string a process controls goes through
//! `printable`, so no record can forge a line or drive the terminal.
use std::io::{self, Write};

use super::{Sink, printable::printable};
use crate::{
    record::{EndpointRef, ProcessRef, Proof, Record},
    vocab::{Enforced, FindingAction, Hook, HostSource, RuleId},
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
        printable(&p.comm),
        p.pid,
        p.ppid,
        p.uid,
        login,
        printable(&p.context)
    )
}

fn endpoint(e: &EndpointRef) -> String {
    let source = match e.host_source {
        Some(HostSource::TlsSni) => " (sni)",
        Some(HostSource::Dns) => " (dns)",
        None => "",
    };
    let claimed = e
        .host_claimed
        .as_deref()
        .map(|c| format!(" (TLS claimed {})", printable(c)))
        .unwrap_or_default();
    let host = e
        .host
        .as_deref()
        .map(|h| format!("{}{source}{claimed} ", printable(h)))
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
                tls_libraries,
                tls_writes,
                policy,
                enforcement,
                credentials,
                processes,
                ..
            } => {
                let hooks: Vec<&str> = hooks.iter().map(|h| h.hook.as_str()).collect();
                let tls = if tls_libraries.is_empty() {
                    "none".to_owned()
                } else {
                    printable(&tls_libraries.join(", ")).into_owned()
                };
                format!(
                    "{time} {} watching {credentials} credentials, {processes} processes; policy: \
                     {}; hooks: {}; TLS libraries read ({tls_writes}): {tls}; enforcement: {} \
                     ({} credentials), reads: {}",
                    self.label("ready", "1;32"),
                    printable(policy),
                    hooks.join(", "),
                    enforcement.mode,
                    enforcement.credentials,
                    enforcement.reads
                )
            }
            Record::CredentialAccess {
                time,
                credential,
                process: p,
                hook,
                enforcement,
                enforcement_rule,
            } => format!(
                "{time} {} {} ({}) read by {} via {hook:?}{}{}",
                self.label("access", "1;33"),
                printable(&credential.path),
                credential.kind,
                process(p),
                match (hook, enforcement) {
                    (Hook::Move, Some(Enforced::Denied)) => " [move refused]",
                    (Hook::Move, _) => " [move would be refused]",
                    (_, Some(Enforced::Denied)) => " [open refused]",
                    (_, Some(Enforced::WouldDeny)) => " [open would be refused]",
                    (_, None) => "",
                },
                match enforcement_rule {
                    Some(RuleId::CrossContextReuse) => " [another context's]",
                    _ => "",
                },
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
                proof,
                request,
            } => format!(
                "{time} {} {} ({}) used by {} -> {}{} (read by {}[{}], {via:?}, {})",
                self.label("use", "1;35"),
                printable(&credential.path),
                credential.kind,
                process(p),
                endpoint(e),
                request.as_ref().map_or_else(String::new, |r| format!(
                    " {} {}",
                    printable(&r.method),
                    printable(&r.path)
                )),
                printable(&reader.comm),
                reader.pid,
                match proof {
                    Proof::Sent => "sent",
                    Proof::Inferred => "inferred",
                },
            ),
            Record::Finding(f) => {
                let severity = serde_json::to_value(f.severity)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_uppercase))
                    .unwrap_or_default();
                let agent = f.agent.as_ref().map_or_else(
                    || "none".to_owned(),
                    |a| format!("{}[{}]", printable(&a.name), a.pid),
                );
                let count = if f.count > 1 {
                    format!(" (x{})", f.count)
                } else {
                    String::new()
                };
                let action = match f.action {
                    FindingAction::Reported => "",
                    FindingAction::Denied => " DENIED",
                    FindingAction::WouldDeny => " WOULD-DENY",
                };
                format!(
                    "{} {}{action} {severity} {}: {}{count} [user {} agent {agent} context {}; {} evidence records]",
                    f.time,
                    self.label("FINDING", "1;31"),
                    f.rule,
                    printable(&f.summary),
                    f.user,
                    printable(&f.context),
                    f.evidence.len()
                )
            }
            Record::Stats {
                time,
                events,
                dropped,
                missed_runs,
                findings,
                names,
                ..
            } => format!(
                "{time} {} {events} events, {dropped} dropped, {missed_runs} missed runs, \
                 {findings} findings; {} DNS answers ({} malformed, {} truncated), {} TLS \
                 server names",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_cannot_forge_a_line_or_an_escape_sequence() {
        let forged = "task\n2026-12-01T00:00:00.000000Z FINDING    CRITICAL forged: \u{1b}[2J";
        let line = r#"{"type":"credential_access","time":"2026-12-01T10:00:00Z",
            "credential":{"id":"netrc:/h/.netrc","kind":"netrc","path":"/h/.net\nrc","owner":1000,
            "identity":"netrc:/h/.netrc"},
            "process":{"pid":7,"ppid":1,"comm":"ca\rt","exe":"/usr/bin/cat","uid":1000,
            "loginuid":1000,"context":"CONTEXT"},"hook":"read"}"#
            .replace('\n', "")
            .replace("\"CONTEXT\"", &serde_json::to_string(forged).unwrap());
        let record: Record = serde_json::from_str(&line).unwrap();
        let mut out = Vec::new();
        TextSink::new(&mut out, false).write(&record).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
        assert!(
            text.contains("task\\n2026") && text.contains("ca\\rt"),
            "{text}"
        );
    }
}
