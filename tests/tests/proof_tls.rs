//! Proof of use over TLS: real clients speak real TLS to local servers that trust a throwaway
//! test CA, and keytrail reads what each wrote before encryption (uprobes on OpenSSL and
//! GnuTLS). curl, python, node, git (libcurl-gnutls) and the AWS CLI each give a proven use of
//! the credential they sent, with the request; curl over HTTP/2 too. A process holding two
//! credentials that sends one to each of two servers gets exactly those two uses. Needs root:
//! `cargo xtask test`.
use std::time::Duration;

use keytrail_tests::*;
use serde_json::Value;

const VAULT_TOKEN: &str = "hvs.kt-tls-vault-token-5c1e";
const GIT_PASSWORD: &str = "kt-tls-git-password-77ab";
const AWS_KEY_ID: &str = "AKIAKTTLSTEST0000042";
const AWS_SECRET: &str = "kt/tls/aws/secret/key/0000000000000000042";
const NETRC_PASSWORD: &str = "kt-tls-netrc-password-31d0";

/// The proven use of `pid` (of any process when None), waited for.
fn proven(k: &mut Keytrail, what: &str, pid: Option<u32>, kind: &str) -> Value {
    k.wait_for(what, WAIT, |r| {
        r["type"] == "credential_use"
            && r["proof"] == "sent"
            && r["credential"]["kind"] == kind
            && pid.is_none_or(|p| r["process"]["pid"] == p)
    })
}

/// A python client that reads `file`, waits `delay` seconds, and sends its content as a vault
/// token over HTTPS to `/v1/{path}`.
fn send_file_script(
    file: &std::path::Path,
    ca_file: &str,
    port: u16,
    path: &str,
    delay: f64,
) -> String {
    format!(
        "import ssl, time, urllib.request\n\
         token = open({file:?}).read().strip()\n\
         time.sleep({delay})\n\
         context = ssl.create_default_context(cafile={ca_file:?})\n\
         request = urllib.request.Request('https://127.0.0.1:{port}/v1/{path}', headers={{'X-Vault-Token': token}})\n\
         urllib.request.urlopen(request, context=context, timeout=5).read()\n",
        file = path_str(file),
    )
}

#[test]
fn tls_clients_prove_the_credential_they_send() {
    require_root();
    require_program("node", "node's fetch and the HTTP/2 test server");
    let aws = require_program("aws", "the AWS CLI signs requests with SigV4");
    let user = TestUser::create("tlsproof");
    user.write(".vault-token", VAULT_TOKEN);
    user.write(
        ".aws/credentials",
        &format!(
            "[default]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n"
        ),
    );
    let ca = TestCa::create("tlsproof");
    let (_https, port) = ca.https_server("127.0.0.1");
    user.git_store("https", &format!("127.0.0.1:{port}"), "bot", GIT_PASSWORD);
    let (_h2, h2_port) = ca.h2_server();
    let ca_file = path_str(&ca.ca());
    let mut k = Keytrail::start(&[]);
    let ready = k.records[0].clone();
    let libraries = ready["tls_libraries"].to_string();
    assert!(
        libraries.contains("libssl.so") && libraries.contains("libgnutls.so"),
        "ready names the TLS libraries it reads: {ready}"
    );

    // curl, given the token by the shell: the request proves it (a copy keytrail did not see
    // travel: cat read the file, the shell passed the value on).
    let curl = run_pid(user.command("sh").arg("-c").arg(format!(
        "exec curl -sf --cacert {ca_file} -H \"X-Vault-Token: $(cat ~/.vault-token)\" \
         https://127.0.0.1:{port}/v1/curl?page=2"
    )));
    let used = proven(&mut k, "curl's proven use", Some(curl), "vault");
    assert_eq!(used["request"]["path"], "/v1/curl", "{used}");
    assert_eq!(used["request"]["host"], "127.0.0.1");

    // python reads the token and sends it (urllib, OpenSSL).
    let script = format!(
        "import os, ssl, urllib.request\n\
         token = open(os.path.expanduser('~/.vault-token')).read().strip()\n\
         context = ssl.create_default_context(cafile={ca_file:?})\n\
         request = urllib.request.Request('https://127.0.0.1:{port}/v1/python', headers={{'X-Vault-Token': token}})\n\
         urllib.request.urlopen(request, context=context, timeout=5).read()\n"
    );
    let python = run_pid(user.command("python3").args(["-c", &script]));
    let used = proven(&mut k, "python's proven use", Some(python), "vault");
    assert_eq!(used["via"], "read", "{used}");
    assert_eq!(used["request"]["path"], "/v1/python");

    // node's fetch (node's own OpenSSL, in its executable).
    let script = format!(
        "const token = require('fs').readFileSync(require('os').homedir() + '/.vault-token', 'utf8').trim();\n\
         fetch('https://127.0.0.1:{port}/v1/node', {{ headers: {{ 'X-Vault-Token': token }} }})\n\
         .then(r => r.text()).catch(e => {{ console.error(e); process.exit(1); }});\n"
    );
    let node = run_pid(
        user.command("node")
            .env("NODE_EXTRA_CA_CERTS", &ca_file)
            .args(["-e", &script]),
    );
    let used = proven(&mut k, "node's proven use", Some(node), "vault");
    assert_eq!(used["request"]["path"], "/v1/node");

    // git over HTTPS (libcurl-gnutls): a 401 first, then its credential helper reads
    // ~/.git-credentials and git retries with Basic credentials on the same connection.
    let _ = user
        .command("git")
        .env("GIT_SSL_CAINFO", &ca_file)
        .args(["-c", "credential.helper=store", "ls-remote"])
        .arg(format!("https://127.0.0.1:{port}/auth/repo"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("git");
    let used = proven(&mut k, "git's proven use", None, "git");
    assert_eq!(used["request"]["path"], "/auth/repo/info/refs", "{used}");

    // The AWS CLI signs with SigV4: the access key id in the Authorization header names the
    // credential (the secret key never leaves the host).
    let status = std::process::Command::new(&aws)
        .env("HOME", &user.home)
        .env("AWS_CA_BUNDLE", &ca_file)
        .args([
            "--endpoint-url",
            &format!("https://127.0.0.1:{port}"),
            "--region",
            "us-east-1",
            "sts",
            "get-caller-identity",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("aws");
    let _ = status; // the test server's answer is not STS's: the CLI may complain
    let used = proven(&mut k, "the AWS CLI's proven use", None, "aws");
    assert_eq!(used["request"]["method"], "POST", "{used}");

    // HTTP/2: curl to node's h2 server; the request is in HPACK-compressed HEADERS.
    let h2 = run_pid(user.command("sh").arg("-c").arg(format!(
        "exec curl -sf --http2 --cacert {ca_file} -H \"Authorization: Bearer $(cat ~/.vault-token)\" \
         https://127.0.0.1:{h2_port}/v1/h2"
    )));
    let used = proven(&mut k, "curl's HTTP/2 proven use", Some(h2), "vault");
    assert_eq!(used["request"]["path"], "/v1/h2", "{used}");

    // A copy keytrail never saw made (the test wrote it), sent over TLS by a process that
    // read nothing: every process's writes are read by default, so it is a proven use.
    let copy = user.write("notes/copied.txt", VAULT_TOKEN);
    let sender = run_pid(
        user.command("python3")
            .args(["-c", &send_file_script(&copy, &ca_file, port, "copy", 0.0)]),
    );
    let used = proven(&mut k, "the copy's proven use", Some(sender), "vault");
    assert_eq!(used["via"], "untracked-copy", "{used}");

    k.settle(Duration::from_millis(1500));
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[VAULT_TOKEN, GIT_PASSWORD, AWS_SECRET]);
}

/// One process, two credentials, two servers: each request carries one credential, so each
/// connection is the use of that one only, and neither is out of scope. Inferred from reads
/// alone, each connection would use both (and each would be out of the other's scope).
#[test]
fn two_credentials_sent_to_two_servers_are_exactly_two_proven_uses() {
    require_root();
    let user = TestUser::create("tlstwo");
    let ca = TestCa::create("tlstwo");
    let (_one, port_one) = ca.https_server("127.0.0.1");
    let (_two, port_two) = ca.https_server("127.0.0.2");
    user.write(
        ".netrc",
        &format!("machine 127.0.0.1 login bot password {NETRC_PASSWORD}\n"),
    );
    user.git_store(
        "https",
        &format!("127.0.0.2:{port_two}"),
        "bot",
        GIT_PASSWORD,
    );
    let mut k = Keytrail::start(&[]);
    let script = format!(
        "import base64, os, ssl, urllib.request\n\
         home = os.path.expanduser('~')\n\
         netrc = open(home + '/.netrc').read().split()[-1]\n\
         git = open(home + '/.git-credentials').read().split('@')[0].split(':')[-1]\n\
         context = ssl.create_default_context(cafile={ca:?})\n\
         basic = base64.b64encode(('bot:' + netrc).encode()).decode()\n\
         for url, auth in [('https://127.0.0.1:{port_one}/one', 'Basic ' + basic), ('https://127.0.0.2:{port_two}/two', 'Bearer ' + git)]:\n\
         \x20   urllib.request.urlopen(urllib.request.Request(url, headers={{'Authorization': auth}}), context=context, timeout=5).read()\n",
        ca = path_str(&ca.ca())
    );
    let python = run_pid(user.command("python3").args(["-c", &script]));
    proven(&mut k, "the first proven use", Some(python), "netrc");
    proven(&mut k, "the second proven use", Some(python), "git");
    k.settle(Duration::from_millis(2500));
    let (records, stderr) = k.stop();
    let uses: Vec<(String, String, String)> = of(&records, "credential_use", python)
        .map(|u| {
            (
                u["credential"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                u["endpoint"]["ip"].as_str().unwrap_or_default().to_owned(),
                u["proof"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        uses,
        [
            ("netrc".into(), "127.0.0.1".into(), "sent".into()),
            ("git".into(), "127.0.0.2".into(), "sent".into())
        ],
        "exactly the two sent"
    );
    let out_of_scope: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "finding" && r["rule"] == "out-of-scope-use")
        .filter(|r| r.to_string().contains(&format!("\"pid\":{python}")))
        .collect();
    assert!(out_of_scope.is_empty(), "{out_of_scope:?}");
    assert_no_secret(&records, &stderr, &[NETRC_PASSWORD, GIT_PASSWORD]);
}

/// `[proof] tls = "holders"`: only credential holders' TLS writes are read, so processes that
/// hold nothing pay nothing. A client that reads a token and sends it later is followed from
/// its read and proves its use; a copy sent by a process that never read a credential is not
/// read (the default mode catches it: the first test).
#[test]
fn holders_mode_reads_the_writes_of_credential_holders_only() {
    require_root();
    let user = TestUser::create("tlsholders");
    let token = user.write(".vault-token", VAULT_TOKEN);
    let copy = user.write("notes/copied.txt", VAULT_TOKEN);
    let ca = TestCa::create("tlsholders");
    let (_https, port) = ca.https_server("127.0.0.1");
    let ca_file = path_str(&ca.ca());
    let policy = std::env::temp_dir().join(format!("kt-holders-{}.toml", std::process::id()));
    let default =
        run(std::process::Command::new(keytrail_bin()).args(["policy", "--default"])).stdout;
    let text = String::from_utf8(default).unwrap();
    assert!(
        text.contains("tls = \"all\""),
        "the default reads every process's writes"
    );
    std::fs::write(
        &policy,
        text.replacen("tls = \"all\"", "tls = \"holders\"", 1),
    )
    .unwrap();
    let mut k = Keytrail::start(&["--config", policy.to_str().unwrap()]);
    assert_eq!(k.records[0]["tls_writes"], "holders", "{}", k.records[0]);

    let copier = run_pid(
        user.command("python3")
            .args(["-c", &send_file_script(&copy, &ca_file, port, "copy", 0.0)]),
    );
    // Followed from its read (some 10-20 ms later): its request, half a second on, is read.
    let holder = run_pid(user.command("python3").args([
        "-c",
        &send_file_script(&token, &ca_file, port, "holder", 0.5),
    ]));
    let used = proven(&mut k, "the holder's proven use", Some(holder), "vault");
    assert_eq!(used["via"], "read", "{used}");
    assert_eq!(used["request"]["path"], "/v1/holder", "{used}");
    k.settle(Duration::from_millis(1500));
    let (records, stderr) = k.stop();
    let copied: Vec<&Value> = of(&records, "credential_use", copier).collect();
    assert!(
        copied.is_empty(),
        "a non-holder's writes are not read: {copied:?}"
    );
    assert_no_secret(&records, &stderr, &[VAULT_TOKEN]);
    let _ = std::fs::remove_file(policy);
}
