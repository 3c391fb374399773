//! Proof of use: the credential seen in the request, not only inferred from a read and a
//! connect. Real clients send to a real local HTTP server (python's http.server): curl with
//! `-n` (it reads ~/.netrc and sends Basic credentials), and python sending a Vault token in
//! Vault's own header while it holds a netrc too. Plain HTTP for now; TLS libraries are to
//! come. Needs root: `cargo xtask test`.
use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::Duration,
};

use keytrail_tests::*;
use serde_json::Value;

const NETRC_PASSWORD: &str = "kt-proof-netrc-pw-71c2";
const VAULT_TOKEN: &str = "hvs.kt-proof-vault-token-9a0e";

/// python's http.server on 127.0.0.1, answering every request (with 404).
fn http_server() -> (KillOnDrop, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = KillOnDrop(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server"),
    );
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

fn uses_by(records: &[Value], pid: u32) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["type"] == "credential_use" && r["process"]["pid"] == pid)
        .collect()
}

#[test]
fn credentials_seen_in_plain_http_requests_are_proven_uses() {
    require_root();
    let user = TestUser::create("proof");
    user.write(
        ".netrc",
        &format!("machine 127.0.0.1 login bot password {NETRC_PASSWORD}\n"),
    );
    user.write(".vault-token", VAULT_TOKEN);
    let (_server, port) = http_server();
    let mut k = Keytrail::start(&[]);

    // curl reads ~/.netrc itself and sends Basic credentials.
    let url = format!("http://127.0.0.1:{port}/private/report?page=2");
    let curl = run_pid(
        user.command("curl")
            .args(["-s", "-o", "/dev/null", "-n", &url]),
    );
    let proven = k.wait_for("curl's proven use", WAIT, |r| {
        r["type"] == "credential_use" && r["process"]["pid"] == curl && r["proof"] == "sent"
    });
    assert_eq!(proven["credential"]["kind"], "netrc", "{proven}");
    assert_eq!(proven["request"]["method"], "GET");
    assert_eq!(
        proven["request"]["path"], "/private/report",
        "the query is not kept"
    );
    assert_eq!(proven["request"]["host"], "127.0.0.1");

    // python holds a netrc and a Vault token, and sends the token: the request says which
    // credential went there, so that is the one use of the connection.
    let script = format!(
        "import os, urllib.request\n\
         open(os.path.expanduser('~/.netrc')).read()\n\
         token = open(os.path.expanduser('~/.vault-token')).read().strip()\n\
         request = urllib.request.Request('http://127.0.0.1:{port}/v1/secret/data/app', headers={{'X-Vault-Token': token}})\n\
         try:\n\
         \x20   urllib.request.urlopen(request, timeout=3).read()\n\
         except Exception:\n\
         \x20   pass\n"
    );
    let python = run_pid(user.command("python3").args(["-c", &script]));
    k.wait_for("python's proven use", WAIT, |r| {
        r["type"] == "credential_use" && r["process"]["pid"] == python && r["proof"] == "sent"
    });
    k.settle(Duration::from_millis(1500));
    let (records, stderr) = k.stop();
    let used = uses_by(&records, python);
    assert_eq!(used.len(), 1, "one use, the one sent: {used:?}");
    assert_eq!(used[0]["credential"]["kind"], "vault");
    assert_eq!(used[0]["request"]["path"], "/v1/secret/data/app");
    assert_no_secret(&records, &stderr, &[NETRC_PASSWORD, VAULT_TOKEN]);
}

/// A token copied out of its file and sent by a process that never read it: the request proves
/// the use, `via: untracked-copy`. Before, no record named it (nobody of the sender's lineage
/// read a watched file).
#[test]
fn a_copied_token_sent_by_another_process_is_a_proven_untracked_copy() {
    require_root();
    let user = TestUser::create("proofcopy");
    user.write(".vault-token", VAULT_TOKEN);
    let copy = std::env::temp_dir().join(format!("kt-proof-copy-{}", std::process::id()));
    let (_server, port) = http_server();
    let mut k = Keytrail::start(&[]);
    run(user
        .command("sh")
        .arg("-c")
        .arg(format!("cat ~/.vault-token > {}", copy.display())));
    let script = format!(
        "import urllib.request\n\
         token = open({copy:?}).read().strip()\n\
         request = urllib.request.Request('http://127.0.0.1:{port}/v1/sys/health', headers={{'X-Vault-Token': token}})\n\
         try:\n\
         \x20   urllib.request.urlopen(request, timeout=3).read()\n\
         except Exception:\n\
         \x20   pass\n",
        copy = path_str(&copy)
    );
    let sender = run_pid(Command::new("python3").args(["-c", &script]));
    let used = k.wait_for("the copy's proven use", WAIT, |r| {
        r["type"] == "credential_use" && r["process"]["pid"] == sender
    });
    assert_eq!(used["via"], "untracked-copy", "{used}");
    assert_eq!(used["proof"], "sent");
    assert_eq!(used["credential"]["kind"], "vault");
    assert_eq!(used["request"]["path"], "/v1/sys/health");
    let (records, stderr) = k.stop();
    let _ = std::fs::remove_file(&copy);
    assert_no_secret(&records, &stderr, &[VAULT_TOKEN]);
}
