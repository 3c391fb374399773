//! The five rules on the live kernel, with real processes: an agent that hands a token from one
//! task to another, one process acting with two identities, a root service using a person's
//! credential, a use outside the scope, an unexpected reader, and the quiet path that must stay
//! silent. Needs root: run with `cargo xtask test`.
use std::{fs, net::TcpListener, process::Command, time::Duration};

use keytrail_tests::*;
use serde_json::Value;

const TOKEN: &str = "kt-finding-token-5f0c93";
const GIT_TOKEN: &str = "kt-finding-gittok-77ab12";

fn loopback_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// A user whose ~/.netrc holds TOKEN for 127.0.0.1, so loopback is inside its scope.
fn user_with_netrc(tag: &str) -> (TestUser, String) {
    let user = TestUser::create(tag);
    let netrc = user.write(
        ".netrc",
        &format!("machine 127.0.0.1 login bot password {TOKEN}\n"),
    );
    (user, path_str(&netrc))
}

fn connect_script(port: u16) -> String {
    format!("import socket; socket.create_connection(('127.0.0.1', {port})).close()")
}

/// Runs `python3 -c script` as `user`, returning its pid.
fn python_as(user: &TestUser, script: &str) -> u32 {
    run_pid(user.command("python3").args(["-c", script]))
}

/// Runs `python3 -c script` as `user` logged in: its loginuid is the user's own (set by root
/// before it drops to the user), whatever login this test session has. Returns its pid.
fn python_logged_in_as(user: &TestUser, script: &str) -> u32 {
    let (uid, gid) = (user.uid.to_string(), user.gid.to_string());
    run_pid(
        Command::new("sh")
            .args([
                "-c",
                "echo \"$0\" > /proc/self/loginuid && \
                 exec setpriv --reuid \"$0\" --regid \"$1\" --clear-groups -- python3 -c \"$2\"",
                &uid,
                &gid,
                script,
            ])
            .env("HOME", &user.home)
            // The system's python: root's PATH may lead to an interpreter the user cannot run.
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir(&user.home),
    )
}

#[test]
fn a_token_handed_from_one_task_to_another_is_cross_context_reuse() {
    require_root();
    let (user, netrc) = user_with_netrc("xctx");
    let (_listener, port) = loopback_listener();
    let mut k = Keytrail::start(&[]);
    // The agent: task-1 reads the token, task-2 connects with what it was handed.
    let agent = format!(
        "import os, subprocess\n\
         t1 = dict(os.environ, KEYTRAIL_CONTEXT='task-1')\n\
         subprocess.run(['cat', {netrc:?}], env=t1, stdout=subprocess.DEVNULL, check=True)\n\
         t2 = dict(os.environ, KEYTRAIL_CONTEXT='task-2')\n\
         subprocess.run(['python3', '-c', {connect:?}], env=t2, check=True)\n",
        connect = connect_script(port)
    );
    let agent_pid = python_as(&user, &agent);
    let finding = k.wait_for("cross-context-reuse", WAIT, |r| {
        r["type"] == "finding" && r["rule"] == "cross-context-reuse"
    });
    assert_eq!(finding["context"], "task-2");
    assert_eq!(finding["agent"]["pid"], agent_pid);
    assert_eq!(finding["credential"]["path"], netrc);
    assert_eq!(finding["endpoint"]["port"], port);
    assert_eq!(finding["severity"], "high");
    let evidence = finding["evidence"].as_array().unwrap();
    assert_eq!(evidence[0]["type"], "credential_access");
    assert_eq!(evidence[0]["process"]["context"], "task-1");
    assert_eq!(evidence[1]["type"], "credential_use");
    assert_eq!(evidence[1]["via"], "agent");
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[TOKEN]);
}

#[test]
fn one_task_acting_with_two_identities_is_an_identity_mesh() {
    require_root();
    let (user, netrc) = user_with_netrc("mesh");
    let git = user.write(
        ".git-credentials",
        &format!("http://bot:{GIT_TOKEN}@127.0.0.1\n"),
    );
    let (_listener, port) = loopback_listener();
    let mut k = Keytrail::start(&[]);
    let task = format!(
        "open({netrc:?}).read(); open({git:?}).read()\n{}",
        connect_script(port),
        git = path_str(&git)
    );
    let pid = run_pid(
        user.command("python3")
            .args(["-c", &task])
            .env("KEYTRAIL_CONTEXT", "task-mesh"),
    );
    let finding = k.wait_for("identity-mesh", WAIT, |r| {
        r["type"] == "finding" && r["rule"] == "identity-mesh"
    });
    assert_eq!(finding["process"]["pid"], pid);
    assert_eq!(finding["context"], "task-mesh");
    let summary = finding["summary"].as_str().unwrap();
    assert!(
        summary.contains(".netrc") && summary.contains(".git-credentials"),
        "both identities are listed: {summary}"
    );
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[TOKEN, GIT_TOKEN]);
}

#[test]
fn a_root_service_using_a_users_credential_is_identity_collapse() {
    require_root();
    let (user, netrc) = user_with_netrc("coll");
    let (_listener, port) = loopback_listener();
    let mut k = Keytrail::start(&[]);
    let script = format!("open({netrc:?}).read()\n{}", connect_script(port));
    let pid = run_pid(Command::new("python3").args(["-c", &script])); // as root
    let finding = k.wait_for("identity-collapse", WAIT, |r| {
        r["type"] == "finding" && r["rule"] == "identity-collapse"
    });
    assert_eq!(finding["process"]["pid"], pid);
    let owner = finding["credential"]["owner"].as_u64().unwrap();
    assert_ne!(owner, 0, "the credential is the test user's");
    assert_ne!(finding["user"].as_u64().unwrap(), owner);
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[TOKEN]);
    drop(user);
}

#[test]
fn a_use_outside_the_scope_and_an_unexpected_reader_are_reported() {
    require_root();
    let user = TestUser::create("scope");
    let token = user.write(".kt-token", &format!("{TOKEN}\n"));
    let key = user.write(".ssh/id_ed25519", "kt-private-key-material-0042\n");
    let policy = std::env::temp_dir().join(format!("kt-scope-{}.toml", std::process::id()));
    let default = run(Command::new(keytrail_bin()).args(["policy", "--default"])).stdout;
    let mut text = String::from_utf8(default).unwrap();
    text.push_str(&format!(
        "\n[[credentials]]\nkind = \"generic\"\npaths = [{:?}]\ncidrs = [\"127.0.0.0/8\"]\nports = [443]\n",
        path_str(&token)
    ));
    fs::write(&policy, text).unwrap();
    run(Command::new(keytrail_bin())
        .arg("check-config")
        .arg(&policy));
    let (_listener, port) = loopback_listener();
    let mut k = Keytrail::start(&["--config", policy.to_str().unwrap()]);
    let script = format!(
        "open({:?}).read()\n{}",
        path_str(&token),
        connect_script(port)
    );
    let reader = python_as(&user, &script);
    let cat = run_pid(user.command("cat").arg(&key));
    k.wait_for("out-of-scope-use", WAIT, |r| {
        r["type"] == "finding" && r["rule"] == "out-of-scope-use" && r["process"]["pid"] == reader
    });
    let unexpected = k.wait_for("unexpected-reader", WAIT, |r| {
        r["type"] == "finding" && r["rule"] == "unexpected-reader"
    });
    assert_eq!(unexpected["process"]["pid"], cat);
    assert_eq!(unexpected["credential"]["kind"], "ssh");
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[TOKEN, "kt-private-key-material-0042"]);
    fs::remove_file(policy).unwrap();
}

#[test]
fn a_same_user_same_context_use_in_scope_is_silent() {
    require_root();
    let (user, netrc) = user_with_netrc("quiet");
    let (_listener, port) = loopback_listener();
    let mut k = Keytrail::start(&[]);
    let script = format!("open({netrc:?}).read()\n{}", connect_script(port));
    let pid = python_logged_in_as(&user, &script);
    let used = k.wait_for("the use itself", WAIT, |r| {
        r["type"] == "credential_use" && r["process"]["pid"] == pid
    });
    assert_eq!(
        used["process"]["loginuid"], user.uid,
        "the reader acts for the user it runs as"
    );
    k.settle(Duration::from_millis(300));
    let (records, _) = k.stop();
    let any: Vec<&Value> = records.iter().filter(|r| r["type"] == "finding").collect();
    assert!(any.is_empty(), "no finding on the quiet path: {any:#?}");
    assert_eq!(records.last().unwrap()["findings"], 0);
}

#[test]
fn ssh_reading_its_own_key_and_a_task_using_what_it_read_are_silent() {
    require_root();
    let (user, netrc) = user_with_netrc("quiet2");
    let key = user.write(".ssh/id_ed25519", "");
    // A real key, written by ssh-keygen as the user: an allowed reader of it.
    fs::remove_file(&key).unwrap();
    run(user
        .command("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key));
    let (_listener, port) = loopback_listener();
    let mut k = Keytrail::start(&[]);
    let keygen = run_pid(user.command("ssh-keygen").args(["-y", "-f"]).arg(&key));
    // One task reads the netrc and connects inside its scope: same context, no hand-off.
    let task = format!(
        "import os, subprocess\n\
         t1 = dict(os.environ, KEYTRAIL_CONTEXT='task-1')\n\
         subprocess.run(['python3', '-c', 'open({netrc:?}).read()\\n' + {connect:?}], env=t1, check=True)\n",
        connect = connect_script(port)
    );
    let agent = python_logged_in_as(&user, &task);
    k.wait_for("ssh-keygen's read of the key", WAIT, |r| {
        r["type"] == "credential_access" && r["process"]["pid"] == keygen
    });
    k.wait_for("the task's use", WAIT, |r| {
        r["type"] == "credential_use" && r["process"]["ppid"] == agent
    });
    k.settle(Duration::from_millis(300));
    let (records, _) = k.stop();
    let any: Vec<&Value> = records.iter().filter(|r| r["type"] == "finding").collect();
    assert!(any.is_empty(), "no finding: {any:#?}");
}

#[test]
fn a_secret_in_argv_is_never_printed() {
    require_root();
    let (user, netrc) = user_with_netrc("argv");
    let (_listener, port) = loopback_listener();
    let mut k = Keytrail::start(&[]);
    // The process reads the token, then is run with it on its command line and connects.
    let script = format!(
        "import subprocess\ntok = open({netrc:?}).read().split()[-1]\n\
         subprocess.run(['python3', '-c', {connect:?}, '--token', tok, 'Bearer ' + tok], check=True)\n",
        connect = connect_script(port)
    );
    python_as(&user, &script);
    let used = k.wait_for("use by the child with the token in argv", WAIT, |r| {
        r["type"] == "credential_use"
            && r["process"]["argv"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "--token"))
    });
    let argv = used["process"]["argv"].to_string();
    assert!(argv.contains("[REDACTED]"), "{argv}");
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[TOKEN]);
}

#[test]
fn a_program_that_calls_itself_git_does_not_read_ssh_keys_quietly() {
    require_root();
    let user = TestUser::create("fakegit");
    let key = user.write(".ssh/id_ed25519", "kt-private-key-material-0099\n");
    // A copy of cat in the user's home, named git; and a symlink named git to python.
    let bin = user.home.join("bin");
    let copy = user.home.join("bin/git");
    let link = user.home.join("link/git");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    fs::copy("/bin/cat", &copy).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3", &link).unwrap();
    run(Command::new("chown")
        .args(["-R", &format!("{0}:{0}", user.name)])
        .arg(&user.home));
    let mut k = Keytrail::start(&[]);
    let copied = run_pid(user.command(copy.to_str().unwrap()).arg(&key));
    // The link is judged by the file behind it, which keytrail resolves while the process
    // lives: it stays a moment after its read. (One gone before its exec is handled is judged
    // by the link's name, as the README's threat model says; a fresh CI run met that race.)
    let script = format!(
        "import time; open({:?}).read(); time.sleep(0.5)",
        path_str(&key)
    );
    let linked = run_pid(user.command(link.to_str().unwrap()).args(["-c", &script]));
    for (pid, exe_owner) in [(copied, user.uid), (linked, 0)] {
        let finding = k.wait_for("unexpected-reader", WAIT, |r| {
            r["type"] == "finding" && r["rule"] == "unexpected-reader" && r["process"]["pid"] == pid
        });
        assert_eq!(finding["process"]["comm"], "git", "{finding}");
        assert_eq!(finding["process"]["exe_owner"], exe_owner, "{finding}");
    }
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &["kt-private-key-material-0099"]);
}
