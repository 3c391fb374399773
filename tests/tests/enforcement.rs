//! Enforcement: policy's `action = "deny"` refuses, in the kernel, a connect by a process that
//! holds an AWS key to an endpoint outside the key's scope (EPERM), and lets one inside it
//! through: sts.amazonaws.com is named by a real dnsmasq in a network namespace, and the kernel
//! learns its address from the answer before python can connect. The read and the connect
//! follow each other at once; a process that holds nothing is never refused; a dry run refuses
//! nothing and reports `would-deny`; and once keytrail is killed (SIGKILL) nothing stays
//! refused. Needs root: `cargo xtask test`.
use std::process::{Command, Output};

use keytrail_tests::*;
use serde_json::Value;

const AWS_SECRET: &str = "kt/enforce/aws/secret/000000000000000000071";

/// A policy: the default, with out-of-scope uses refused.
fn deny_policy() -> std::path::PathBuf {
    policy_denying("out-of-scope-use", ("", ""))
}

/// A policy file: the default, with `rule`'s findings refused, and the first `edit.0`
/// replaced with `edit.1`.
fn policy_denying(rule: &str, edit: (&str, &str)) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("kt-enforce-{rule}-{}.toml", std::process::id()));
    let default = run(Command::new(keytrail_bin()).args(["policy", "--default"])).stdout;
    let text = String::from_utf8(default).unwrap();
    let header = format!("[rules.{rule}]\n");
    assert!(
        text.contains(&header),
        "the default policy has the rule's table"
    );
    let text = text.replacen(&header, &format!("{header}action = \"deny\"\n"), 1);
    assert!(text.contains(edit.0), "the default policy has {:?}", edit.0);
    let text = text.replacen(edit.0, edit.1, 1);
    std::fs::write(&path, text).unwrap();
    run(Command::new(keytrail_bin()).arg("check-config").arg(&path));
    path
}

/// A user with an AWS key, and a namespace whose resolver names sts.amazonaws.com (inside the
/// key's scope) and evil.example (outside it). Nothing listens: a connect let through is
/// refused by the peer (ECONNREFUSED); one refused by keytrail fails with EPERM.
fn setup(tag: &str) -> (TestUser, Netns, KillOnDrop) {
    let user = TestUser::create(tag);
    user.write(
        ".aws/credentials",
        &format!(
            "[default]\naws_access_key_id = AKIAKTENFORCE0000071\naws_secret_access_key = {AWS_SECRET}\n"
        ),
    );
    let ns = Netns::create(
        tag,
        &["10.77.0.1/24", "10.77.0.10/24", "10.77.0.20/24"],
        "10.77.0.1",
    );
    let dnsmasq = ns.dnsmasq(&[
        "--address=/sts.amazonaws.com/10.77.0.10",
        "--address=/evil.example/10.77.0.20",
    ]);
    ns.wait_until_resolves("evil.example");
    (user, ns, dnsmasq)
}

/// Python that (if `read`) reads the AWS key, then at once connects to each host on port 443,
/// printing `host errno-name` (`ok` when connected).
fn connect_script(read: bool, hosts: &[&str]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    format!(
        "import errno, os, socket\n\
         {}\n\
         for host in [{}]:\n\
         \x20   address = socket.getaddrinfo(host, 443, socket.AF_INET)[0][4]\n\
         \x20   s = socket.socket()\n\
         \x20   try:\n\
         \x20       s.connect(address)\n\
         \x20       print(host, 'ok')\n\
         \x20   except OSError as e:\n\
         \x20       print(host, errno.errorcode.get(e.errno, e.errno))\n",
        if read {
            "open(os.path.expanduser('~/.aws/credentials')).read()"
        } else {
            "pass"
        },
        hosts.join(", ")
    )
}

fn outcomes(output: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(h, e)| (h.to_owned(), e.to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(h, e)| (h.to_string(), e.to_string()))
        .collect()
}

fn python(ns: &Netns, user: &TestUser, script: &str) -> (u32, Output) {
    let child = ns
        .command_as(user, "python3")
        .args(["-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let pid = child.id();
    (pid, child.wait_with_output().unwrap())
}

#[test]
fn connects_outside_every_held_scope_are_refused_in_the_kernel() {
    require_root();
    let (user, ns, _dnsmasq) = setup("enf");
    let policy = deny_policy();
    let mut k = Keytrail::start(&["--config", policy.to_str().unwrap()]);
    let ready = k.records[0].clone();
    assert_eq!(ready["enforcement"]["mode"], "deny", "{ready}");

    // Read, then connect at once: in scope through, out of scope refused.
    let (holder, output) = python(
        &ns,
        &user,
        &connect_script(true, &["sts.amazonaws.com", "evil.example"]),
    );
    assert_eq!(
        outcomes(&output),
        pairs(&[
            ("sts.amazonaws.com", "ECONNREFUSED"),
            ("evil.example", "EPERM")
        ]),
        "the holder"
    );
    // A process that holds nothing goes anywhere.
    let (_, output) = python(&ns, &user, &connect_script(false, &["evil.example"]));
    assert_eq!(
        outcomes(&output),
        pairs(&[("evil.example", "ECONNREFUSED")])
    );
    // A holder whose other thread execs a new program (the kernel ends the old leader) still
    // holds; and an IPv6 socket reaching IPv4 (`::ffff:a.b.c.d`, as Java's do) is judged as
    // IPv4.
    let after_exec = format!(
        "import os, threading\n\
         open(os.path.expanduser('~/.aws/credentials')).read()\n\
         script = {:?}\n\
         threading.Thread(target=lambda: os.execv('/usr/bin/python3', ['python3', '-c', script])).start()\n\
         threading.Event().wait(10)\n",
        connect_script(false, &["evil.example"])
    );
    let (_, output) = python(&ns, &user, &after_exec);
    assert_eq!(
        outcomes(&output),
        pairs(&[("evil.example", "EPERM")]),
        "after a thread's exec"
    );
    let mapped = "import errno, os, socket\n\
                  open(os.path.expanduser('~/.aws/credentials')).read()\n\
                  for host, address in [('sts.amazonaws.com', '::ffff:10.77.0.10'), ('evil.example', '::ffff:10.77.0.20')]:\n\
                  \x20   socket.getaddrinfo(host, 443, socket.AF_INET)\n\
                  \x20   s = socket.socket(socket.AF_INET6)\n\
                  \x20   try:\n\
                  \x20       s.connect((address, 443))\n\
                  \x20       print(host, 'ok')\n\
                  \x20   except OSError as e:\n\
                  \x20       print(host, errno.errorcode.get(e.errno, e.errno))\n";
    let (_, output) = python(&ns, &user, mapped);
    assert_eq!(
        outcomes(&output),
        pairs(&[
            ("sts.amazonaws.com", "ECONNREFUSED"),
            ("evil.example", "EPERM")
        ]),
        "IPv4-mapped IPv6"
    );

    let finding = k.wait_for("the refusal's finding", WAIT, |r| {
        r["type"] == "finding" && r["rule"] == "out-of-scope-use" && r["process"]["pid"] == holder
    });
    assert_eq!(finding["action"], "denied", "{finding}");
    assert_eq!(finding["endpoint"]["enforcement"], "denied");
    assert_eq!(finding["endpoint"]["host"], "evil.example");
    let (records, stderr) = k.stop();
    let in_scope: Vec<&Value> = of(&records, "credential_use", holder)
        .filter(|u| u["endpoint"]["host"] == "sts.amazonaws.com")
        .collect();
    assert!(
        in_scope
            .iter()
            .all(|u| u["endpoint"]["enforcement"].is_null()),
        "the in-scope connect went through: {in_scope:?}"
    );
    assert_no_secret(&records, &stderr, &[AWS_SECRET]);
}

#[test]
fn a_dry_run_refuses_nothing_and_reports_would_deny() {
    require_root();
    let (user, ns, _dnsmasq) = setup("enfdry");
    let policy = deny_policy();
    let mut k = Keytrail::start(&["--config", policy.to_str().unwrap(), "--dry-run-enforce"]);
    assert_eq!(k.records[0]["enforcement"]["mode"], "dry-run");
    let (holder, output) = python(&ns, &user, &connect_script(true, &["evil.example"]));
    assert_eq!(
        outcomes(&output),
        pairs(&[("evil.example", "ECONNREFUSED")])
    );
    let finding = k.wait_for("the would-deny finding", WAIT, |r| {
        r["type"] == "finding" && r["rule"] == "out-of-scope-use" && r["process"]["pid"] == holder
    });
    assert_eq!(finding["action"], "would-deny", "{finding}");
    k.stop();
}

#[test]
fn nothing_stays_refused_once_keytrail_is_killed() {
    require_root();
    let (user, ns, _dnsmasq) = setup("enfkill");
    let policy = deny_policy();
    let k = Keytrail::start(&["--config", policy.to_str().unwrap()]);
    let script = connect_script(true, &["evil.example"]);
    let (_, output) = python(&ns, &user, &script);
    assert_eq!(
        outcomes(&output),
        pairs(&[("evil.example", "EPERM")]),
        "while running"
    );
    k.kill();
    let (_, output) = python(&ns, &user, &script);
    assert_eq!(
        outcomes(&output),
        pairs(&[("evil.example", "ECONNREFUSED")]),
        "after SIGKILL the hooks are gone with their maps"
    );
}

/// Python that reads the AWS key (if `read`) in the context its environment gives, then starts
/// a child with the label `argv[1]` (empty: the parent's environment as it is) that reads the
/// key too when `argv[2]` is `read`, and connects to each host.
fn handing_script(read: bool, hosts: &[&str]) -> String {
    format!(
        "import os, subprocess, sys\n\
         {}\n\
         env = dict(os.environ)\n\
         if sys.argv[1]:\n\
         \x20   env['KEYTRAIL_CONTEXT'] = sys.argv[1]\n\
         child = {:?} if sys.argv[2] == 'read' else {:?}\n\
         subprocess.run(['python3', '-c', child], env=env)\n",
        if read {
            "open(os.path.expanduser('~/.aws/credentials')).read()"
        } else {
            "pass"
        },
        connect_script(true, hosts),
        connect_script(false, hosts),
    )
}

/// A parent labelled `parent` that reads the key hands it to a child labelled `child`.
fn handed(ns: &Netns, user: &TestUser, parent: &str, child: &str, child_reads: bool) -> Output {
    ns.command_as(user, "python3")
        .env("KEYTRAIL_CONTEXT", parent)
        .args([
            "-c",
            &handing_script(true, &["sts.amazonaws.com", "evil.example"]),
        ])
        .arg(child)
        .arg(if child_reads { "read" } else { "no" })
        .output()
        .expect("python3")
}

#[test]
fn a_credential_carried_into_another_context_is_refused_in_its_scope() {
    require_root();
    let (user, ns, _dnsmasq) = setup("enfctx");
    let policy = policy_denying("cross-context-reuse", ("", ""));
    let mut k = Keytrail::start(&["--config", policy.to_str().unwrap()]);
    let ready = k.records[0].clone();
    assert_eq!(ready["enforcement"]["contexts"], "deny", "{ready}");

    // Handed to a child that declares another context: its use inside the key's scope is
    // refused; outside the scope it is no use of the key (out-of-scope uses are not refused
    // by this policy).
    let output = handed(&ns, &user, "task-a", "task-b", false);
    assert_eq!(
        outcomes(&output),
        pairs(&[
            ("sts.amazonaws.com", "EPERM"),
            ("evil.example", "ECONNREFUSED")
        ]),
        "handed across contexts: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let finding = k.wait_for("the refusal's finding", WAIT, |r| {
        r["type"] == "finding"
            && r["rule"] == "cross-context-reuse"
            && r["context"] == "task-b"
            && r["action"] == "denied"
    });
    assert_eq!(
        finding["endpoint"]["host"], "sts.amazonaws.com",
        "{finding}"
    );
    // In the same context (the label inherited), and after a read of its own in the new one:
    // let through.
    for (child, reads) in [("", false), ("task-b", true)] {
        let output = handed(&ns, &user, "task-a", child, reads);
        assert_eq!(
            outcomes(&output),
            pairs(&[
                ("sts.amazonaws.com", "ECONNREFUSED"),
                ("evil.example", "ECONNREFUSED")
            ]),
            "child label {child:?}, reads: {reads}"
        );
    }
    k.stop();
}

#[test]
fn a_credential_owned_by_a_context_is_refused_to_the_others() {
    require_root();
    let (user, ns, _dnsmasq) = setup("enfown");
    // The default's AWS rule, owned by a context.
    let aws = "paths = [\"~/.aws/credentials\", \"~/.aws/config\"]\n";
    let policy = policy_denying(
        "cross-context-reuse",
        (aws, &format!("{aws}context = \"tenant-a\"\n")),
    );
    let mut k = Keytrail::start(&["--config", policy.to_str().unwrap()]);
    assert_eq!(k.records[0]["enforcement"]["contexts"], "deny");
    let connect = |label: &str| {
        ns.command_as(&user, "python3")
            .env("KEYTRAIL_CONTEXT", label)
            .args(["-c", &connect_script(true, &["sts.amazonaws.com"])])
            .output()
            .expect("python3")
    };
    assert_eq!(
        outcomes(&connect("tenant-a")),
        pairs(&[("sts.amazonaws.com", "ECONNREFUSED")]),
        "the owner"
    );
    assert_eq!(
        outcomes(&connect("tenant-b")),
        pairs(&[("sts.amazonaws.com", "EPERM")]),
        "another context"
    );
    // Read by its owner, handed to a child in another context.
    let output = handed(&ns, &user, "tenant-a", "tenant-b", false);
    assert_eq!(
        outcomes(&output),
        pairs(&[("sts.amazonaws.com", "EPERM"), ("evil.example", "EPERM")]),
        "handed away by its owner"
    );
    let finding = k.wait_for("the owner's finding", WAIT, |r| {
        r["type"] == "finding"
            && r["rule"] == "cross-context-reuse"
            && r["context"] == "tenant-b"
            && r["action"] == "denied"
    });
    assert!(
        finding["summary"]
            .as_str()
            .unwrap()
            .contains("belongs to context tenant-a"),
        "{finding}"
    );
    k.stop();
}

#[test]
fn a_reload_puts_a_new_plan_in_force_and_takes_it_back() {
    require_root();
    let (user, ns, _dnsmasq) = setup("enfhup");
    let dir = scratch_dir("enfhup");
    let policy = dir.join("policy.toml");
    let default = run(Command::new(keytrail_bin()).args(["policy", "--default"])).stdout;
    let refusing = std::fs::read(deny_policy()).unwrap();
    std::fs::write(&policy, &default).unwrap();
    let mut k = Keytrail::start(&["--config", policy.to_str().unwrap()]);
    let script = connect_script(true, &["evil.example"]);
    let outcome = |k: &mut Keytrail, content: &[u8]| {
        std::fs::write(&policy, content).unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(k.pid() as i32, libc::SIGHUP) };
        k.settle(std::time::Duration::from_millis(500));
        outcomes(&python(&ns, &user, &script).1)
    };
    let through = pairs(&[("evil.example", "ECONNREFUSED")]);
    assert_eq!(
        outcome(&mut k, &default),
        through,
        "the default refuses nothing"
    );
    assert_eq!(
        outcome(&mut k, &refusing),
        pairs(&[("evil.example", "EPERM")]),
        "reloaded with out-of-scope uses refused"
    );
    assert_eq!(outcome(&mut k, &default), through, "and back");
    // Contexts the kernel did not follow from the start cannot be refused by a reload: it
    // says so, and refuses nothing for them.
    let contexts = std::fs::read(policy_denying("cross-context-reuse", ("", ""))).unwrap();
    assert_eq!(outcome(&mut k, &contexts), through, "no scope refused");
    let (_, stderr) = k.stop();
    assert!(
        stderr.contains("unavailable until the next start"),
        "{stderr}"
    );
}
