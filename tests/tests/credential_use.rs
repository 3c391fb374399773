//! Credential uses: a read joined with the connections of the same lineage, with real clients
//! (python, git) against local servers. Needs root: run with `cargo xtask test`.
use std::{fs, net::TcpListener, process::Command, time::Duration};

use keytrail_tests::*;

const SECRET: &str = "kt-use-secret-8d2a71";
/// A password git percent-encodes when it stores it.
const GIT_PASSWORD: &str = "kt-git:p@ss/8d2a71";

#[test]
fn python_reads_netrc_then_connects_and_that_is_a_use() {
    require_root();
    let user = TestUser::create("use");
    let netrc = user.write(
        ".netrc",
        &format!("machine 127.0.0.1 login u password {SECRET}\n"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut k = Keytrail::start(&[]);
    let script = format!(
        "import netrc, socket\nnetrc.netrc({:?})\ns = socket.create_connection(('127.0.0.1', {port}))\ns.close()",
        path_str(&netrc)
    );
    let pid = run_pid(Command::new("python3").args(["-c", &script]));
    let record = k.wait_for("credential_use by python", WAIT, |r| {
        r["type"] == "credential_use" && r["process"]["pid"] == pid
    });
    assert_eq!(record["credential"]["path"], path_str(&netrc));
    assert_eq!(record["endpoint"]["ip"], "127.0.0.1");
    assert_eq!(record["endpoint"]["port"], port);
    assert_eq!(record["endpoint"]["protocol"], "tcp");
    assert_eq!(record["via"], "read");
    let (records, stderr) = k.stop();
    assert_eq!(
        of(&records, "connection", pid).count(),
        1,
        "the credential holder's connection is reported"
    );
    let access = records
        .iter()
        .position(|r| r["type"] == "credential_access" && r["process"]["pid"] == pid)
        .expect("python's access is reported");
    let usage = records
        .iter()
        .position(|r| r["type"] == "credential_use" && r["process"]["pid"] == pid)
        .expect("python's use is reported");
    assert!(access < usage, "access is reported before the use");
    assert_no_secret(&records, &stderr, &[SECRET]);
}

#[test]
fn a_process_without_credentials_connecting_is_not_reported() {
    require_root();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut k = Keytrail::start(&[]);
    let script = format!("import socket\nsocket.create_connection(('127.0.0.1', {port})).close()");
    let pid = run_pid(Command::new("python3").args(["-c", &script]));
    k.settle(Duration::from_millis(500));
    let (records, _) = k.stop();
    assert_eq!(of(&records, "connection", pid).count(), 0);
    assert_eq!(of(&records, "credential_use", pid).count(), 0);
}

/// A git server over HTTP (dumb protocol) that asks for Basic credentials, on loopback.
const GIT_SERVER: &str = r#"
import base64, http.server, sys
root, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
expected = 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()
class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k): super().__init__(*a, directory=root, **k)
    def log_message(self, *a): pass
    def do_GET(self):
        if self.headers.get('Authorization') != expected:
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="kt"')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        super().do_GET()
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[test]
fn git_fetch_with_stored_credentials_is_a_use_by_git() {
    require_root();
    let user = TestUser::create("git");
    let served = user.home.join("served");
    fs::create_dir_all(&served).unwrap();
    let repo = served.join("repo.git");
    run(Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&repo));
    let work = user.home.join("work");
    run(Command::new("git").args(["init", "-q"]).arg(&work));
    run(Command::new("git").arg("-C").arg(&work).args([
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    ]));
    run(Command::new("git")
        .arg("-C")
        .arg(&work)
        .args(["push", "-q"])
        .arg(&repo)
        .arg("HEAD:refs/heads/main"));
    run(Command::new("git")
        .arg("-C")
        .arg(&repo)
        .arg("update-server-info"));

    let mut server = KillOnDrop(
        Command::new("python3")
            .args(["-c", GIT_SERVER])
            .arg(&served)
            .args(["kt", GIT_PASSWORD])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.0.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    let port: u16 = port.trim().parse().expect("server port");
    // git writes its own credential file, percent-encoding every field (`127.0.0.1%3aPORT`).
    let credentials = user.git_store("http", &format!("127.0.0.1:{port}"), "kt", GIT_PASSWORD);
    let written = fs::read_to_string(&credentials).unwrap();
    assert!(written.contains("%3a"), "git encodes the port: {written}");

    let mut k = Keytrail::start(&[]);
    let clone = user.home.join("clone");
    run(Command::new("git")
        .args(["-c", "credential.helper=store", "clone", "-q"])
        .arg(format!("http://127.0.0.1:{port}/repo.git"))
        .arg(&clone)
        .env("HOME", &user.home)
        .env("GIT_TERMINAL_PROMPT", "0"));
    let access = k.wait_for(
        "git credential helper reading ~/.git-credentials",
        WAIT,
        |r| r["type"] == "credential_access" && r["credential"]["path"] == path_str(&credentials),
    );
    assert_eq!(access["credential"]["kind"], "git");

    assert_eq!(
        access["credential"]["scope"]["cidrs"],
        serde_json::json!(["127.0.0.1/32"]),
        "the host git encoded, decoded"
    );
    let usage = k.wait_for("credential_use by git against the server", WAIT, |r| {
        r["type"] == "credential_use"
            && r["endpoint"]["port"] == port
            && r["credential"]["kind"] == "git"
    });
    assert!(
        usage["process"]["comm"]
            .as_str()
            .unwrap()
            .starts_with("git"),
        "{usage}"
    );
    assert_ne!(
        usage["process"]["pid"], access["process"]["pid"],
        "the helper reads, its parent connects"
    );
    assert_eq!(usage["via"], "descendant");
    // The same password in a netrc (written after the clone: git's curl would use it first):
    // once decoded, both files hold one secret.
    let netrc = user.write(
        ".netrc",
        &format!("machine 127.0.0.1 login kt password {GIT_PASSWORD}\n"),
    );
    k.settle(Duration::from_millis(300));
    let cat = run_pid(user.command("cat").arg(&netrc));
    let netrc_access = k.wait_for("cat reading ~/.netrc", WAIT, |r| {
        r["type"] == "credential_access" && r["process"]["pid"] == cat
    });
    assert_eq!(
        access["credential"]["fingerprint"], netrc_access["credential"]["fingerprint"],
        "the git password, decoded, is the netrc's"
    );
    drop(server);
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[GIT_PASSWORD, "p%40ss"]);
}
