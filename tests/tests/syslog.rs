//! `keytrail run --syslog`: records to a real rsyslog (Debian's rsyslogd, started here with a
//! configuration of its own that listens on loopback TCP and on a Unix socket, and writes what
//! it receives to a file in RFC 5424 form).
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use keytrail_tests::*;
use serde_json::Value;

struct Rsyslog {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Rsyslog {
    fn start() -> Self {
        let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("rsyslogd is missing: run ./xtask/setup.sh (it installs rsyslog)");
        let dir = scratch_dir("rsyslog");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        let config = format!(
            r#"global(workDirectory="{d}" maxMessageSize="64k")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="kt")
input(type="imuxsock" Socket="{d}/log.sock" ruleset="kt")
ruleset(name="kt") {{ action(type="omfile" file="{d}/messages" template="RSYSLOG_SyslogProtocol23Format") }}
"#
        );
        std::fs::write(dir.join("rsyslog.conf"), config).unwrap();
        let child = Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let rsyslog = Self { child, dir, port };
        rsyslog.wait("rsyslogd to listen", || {
            rsyslog.dir.join("log.sock").exists()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        rsyslog
    }

    fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.join("messages")).unwrap_or_default()
    }

    fn wait(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "no {what} within {WAIT:?}; rsyslog received:\n{}",
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as rsyslog wrote it: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
struct Message {
    pri: u32,
    app: String,
    procid: String,
    msgid: String,
    record: Value,
}

fn parse(line: &str) -> Option<Message> {
    let rest = line.strip_prefix('<')?;
    let (pri, rest) = rest.split_once(">1 ")?;
    let mut fields = rest.splitn(6, ' ');
    let (_time, _host) = (fields.next()?, fields.next()?);
    let (app, procid, msgid) = (fields.next()?, fields.next()?, fields.next()?);
    let msg = fields.next()?.strip_prefix("- ")?;
    Some(Message {
        pri: pri.parse().ok()?,
        app: app.into(),
        procid: procid.into(),
        msgid: msgid.into(),
        record: serde_json::from_str(msg).ok()?,
    })
}

/// Over TCP and over rsyslog's Unix socket: keytrail's records arrive one message each, the
/// NDJSON record as the message (over TCP, RFC 5424 with the record's type as MSGID), facility
/// authpriv and a finding's severity as the message's; and the credential's value is in none.
#[test]
fn records_reach_rsyslog_over_tcp_and_its_unix_socket() {
    require_root();
    let rsyslog = Rsyslog::start();
    let user = TestUser::create("syslog");
    let secret = "kt-syslog-token-31";
    let token = user.write(
        ".git-credentials",
        &format!("https://kt:{secret}@github.com\n"),
    );
    let targets = [
        format!("tcp:127.0.0.1:{}", rsyslog.port),
        format!("unix:{}", rsyslog.dir.join("log.sock").display()),
    ];
    for target in targets {
        let mut keytrail = Command::new(keytrail_bin())
            .args(["run", "--format", "json", "--syslog", &target])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = keytrail.id().to_string();
        let from_keytrail = || -> Vec<Message> {
            rsyslog
                .messages()
                .lines()
                .filter_map(parse)
                .filter(|m| m.app == "keytrail" && m.procid == pid)
                .collect()
        };
        rsyslog.wait(&format!("ready message over {target}"), || {
            from_keytrail().iter().any(|m| m.record["type"] == "ready")
        });
        let reader = run_pid(Command::new("cat").arg(&token));
        rsyslog.wait(&format!("the read over {target}"), || {
            from_keytrail().iter().any(|m| {
                m.record["type"] == "credential_access" && m.record["process"]["pid"] == reader
            })
        });
        // SAFETY: a signal to a child of ours.
        unsafe { libc::kill(keytrail.id() as i32, libc::SIGINT) };
        assert!(keytrail.wait().unwrap().success(), "keytrail over {target}");
        let tcp = target.starts_with("tcp:");
        for m in from_keytrail() {
            // The local form has no MSGID: the record's type is in the record.
            let msgid = if tcp {
                m.record["type"].as_str()
            } else {
                Some("-")
            };
            assert_eq!(Some(m.msgid.as_str()), msgid, "{}", m.record);
            let severity = match m.record["severity"].as_str() {
                Some("critical") => 2,
                Some("high") => 3,
                Some("medium") => 4,
                Some("low") => 5,
                _ => 6,
            };
            assert_eq!(m.pri, 10 * 8 + severity, "{}", m.record);
        }
        assert!(
            from_keytrail().iter().any(|m| m.record["type"] == "stats"),
            "no stats at stop over {target}"
        );
    }
    assert!(!rsyslog.messages().contains(secret));
}
