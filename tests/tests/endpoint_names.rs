//! Endpoints named the way the process meant them: by the DNS answers it received (from a real
//! dnsmasq in a network namespace of the test's own, over UDP and TCP, IPv4 and IPv6, through a
//! CNAME), and by the server name in a TLS ClientHello when there was no DNS at all. Scopes are
//! matched by those names. Bad DNS packets are counted and ignored. Needs root: `cargo xtask test`.
use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::Duration,
};

use keytrail_tests::*;
use serde_json::Value;

const TOKEN: &str = "kt-names-token-3e9d41";

/// A user whose ~/.netrc holds TOKEN for api.github.com: that name is the credential's scope.
fn user_with_netrc(tag: &str) -> TestUser {
    let user = TestUser::create(tag);
    user.write(
        ".netrc",
        &format!("machine api.github.com login bot password {TOKEN}\n"),
    );
    user
}

/// Python that reads ~/.netrc, then connects to each `(host, port)` (refusals are expected:
/// nothing listens, the connect is what counts).
fn read_then_connect(targets: &[(&str, u16)]) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|(h, p)| format!("({h:?}, {p})"))
        .collect();
    format!(
        "import os, socket\n\
         open(os.path.expanduser('~/.netrc')).read()\n\
         for target in [{}]:\n\
         \x20   try:\n\
         \x20       socket.create_connection(target, timeout=3).close()\n\
         \x20   except OSError:\n\
         \x20       pass\n",
        targets.join(", ")
    )
}

fn endpoint_named(r: &Value, kind: &str, pid: u32, host: &str, source: &str) -> bool {
    r["type"] == kind
        && r["process"]["pid"] == pid
        && r["endpoint"]["host"] == host
        && r["endpoint"]["host_source"] == source
}

#[test]
fn dns_answers_name_connections_and_decide_their_scope() {
    require_root();
    let user = user_with_netrc("dnsname");
    let ns = Netns::create(
        "dns",
        &[
            "10.77.0.1/24",
            "10.77.0.10/24",
            "10.77.0.20/24",
            "fd77::10/64",
        ],
        "10.77.0.1",
    );
    let mut k = Keytrail::start(&[]);
    // api.github.com is an alias, as on the real internet (a CDN name behind it).
    let _dnsmasq = ns.dnsmasq(&[
        "--host-record=edge.cdn.test,10.77.0.10,fd77::10",
        "--cname=api.github.com,edge.cdn.test",
        "--address=/evil.example/10.77.0.20",
    ]);
    ns.wait_until_resolves("edge.cdn.test");

    let script = read_then_connect(&[("api.github.com", 443), ("evil.example", 443)]);
    let pid = run_pid(ns.command_as(&user, "python3").args(["-c", &script]));

    let used = k.wait_for("the use, named by DNS", WAIT, |r| {
        endpoint_named(r, "credential_use", pid, "api.github.com", "dns")
    });
    assert!(
        ["10.77.0.10", "fd77::10"].contains(&used["endpoint"]["ip"].as_str().unwrap()),
        "{used}"
    );
    assert_eq!(used["endpoint"]["host_verified"], true, "{used}");
    let finding = k.wait_for("out-of-scope-use by name", WAIT, |r| {
        r["type"] == "finding"
            && r["rule"] == "out-of-scope-use"
            && r["process"]["pid"] == pid
            && r["endpoint"]["host"] == "evil.example"
    });
    assert_eq!(finding["endpoint"]["ip"], "10.77.0.20");
    let (records, stderr) = k.stop();
    // The connect to api.github.com is inside the scope: no finding names it.
    assert!(
        !records.iter().any(|r| r["type"] == "finding"
            && r["rule"] == "out-of-scope-use"
            && r["endpoint"]["host"] == "api.github.com"),
        "an in-scope use was reported as out of scope"
    );
    let stats = records.iter().find(|r| r["type"] == "stats").unwrap();
    assert!(stats["names"]["dns_answers"].as_u64() > Some(0), "{stats}");
    assert_no_secret(&records, &stderr, &[TOKEN]);
}

/// A DNS query by hand, for TCP (glibc asks over UDP).
const TCP_LOOKUP: &str = r#"
import os, socket, struct, sys
name, qtype = sys.argv[1], int(sys.argv[2])
open(os.path.expanduser('~/.netrc')).read()
query = struct.pack('>HHHHHH', 0x4b54, 0x0100, 1, 0, 0, 0)
query += b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\0'
query += struct.pack('>HH', qtype, 1)
s = socket.create_connection(('10.77.0.1', 53), timeout=3)
s.sendall(struct.pack('>H', len(query)) + query)
answer = b''
while len(answer) < 2 or len(answer) < 2 + struct.unpack('>H', answer[:2])[0]:
    answer += s.recv(4096)
s.close()
# The last record's data is the address.
addr = answer[-4:] if qtype == 1 else answer[-16:]
family = socket.AF_INET if qtype == 1 else socket.AF_INET6
try:
    socket.create_connection((socket.inet_ntop(family, addr), 443), timeout=3).close()
except OSError:
    pass
"#;

#[test]
fn answers_over_tcp_and_ipv6_name_connections_too() {
    require_root();
    let user = user_with_netrc("dnstcp");
    let ns = Netns::create("tcp", &["10.77.0.1/24", "fd77::10/64"], "10.77.0.1");
    let mut k = Keytrail::start(&[]);
    let _dnsmasq = ns.dnsmasq(&["--host-record=v6.api.test,fd77::10"]);
    ns.wait_until_resolves("v6.api.test");
    // 28: AAAA.
    let pid =
        run_pid(
            ns.command_as(&user, "python3")
                .args(["-c", TCP_LOOKUP, "v6.api.test", "28"]),
        );
    let connection = k.wait_for("a connection named over TCP DNS", WAIT, |r| {
        endpoint_named(r, "connection", pid, "v6.api.test", "dns")
    });
    assert_eq!(connection["endpoint"]["ip"], "fd77::10");
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[TOKEN]);
}

/// Python that reads ~/.netrc, then opens TLS to 127.0.0.1:port for each server name.
fn read_then_tls(port: u16, names: &[&str]) -> String {
    format!(
        "import os, socket, ssl\n\
         open(os.path.expanduser('~/.netrc')).read()\n\
         ctx = ssl.create_default_context()\n\
         ctx.check_hostname = False\n\
         ctx.verify_mode = ssl.CERT_NONE\n\
         for name in {names:?}:\n\
         \x20   try:\n\
         \x20       with ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})), server_hostname=name) as s:\n\
         \x20           s.do_handshake()\n\
         \x20   except OSError:\n\
         \x20       pass\n"
    )
}

#[test]
fn a_tls_server_name_names_a_connection_without_any_dns() {
    require_root();
    let user = user_with_netrc("sni");
    let dir = scratch_dir("sni");
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=api.github.com", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem")));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = KillOnDrop(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(dir.join("cert.pem"))
            .arg("-key")
            .arg(dir.join("key.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut k = Keytrail::start(&[]);
    let script = read_then_tls(port, &["api.github.com", "evil.example"]);
    let pid = run_pid(user.command("python3").args(["-c", &script]));

    k.wait_for("the use, named by its ClientHello", WAIT, |r| {
        endpoint_named(r, "credential_use", pid, "api.github.com", "tls_sni")
    });
    // api.github.com is in the scope, but only the hello says so (as `curl --resolve
    // api.github.com:443:ADDRESS` would): a claimed name puts nothing in a scope. The second
    // connection (evil.example) to the same address folds into the same finding.
    let claimed = k.wait_for("out-of-scope-use by a claimed name", WAIT, |r| {
        r["type"] == "finding"
            && r["rule"] == "out-of-scope-use"
            && r["process"]["pid"] == pid
            && r["endpoint"]["host"] == "api.github.com"
    });
    assert_eq!(claimed["endpoint"]["host_source"], "tls_sni");
    assert_eq!(claimed["endpoint"]["host_verified"], false);
    assert!(
        claimed["summary"]
            .as_str()
            .unwrap()
            .contains("only its TLS hello claims"),
        "{claimed}"
    );
    let (records, stderr) = k.stop();
    let stats = records.iter().find(|r| r["type"] == "stats").unwrap();
    assert!(
        stats["names"]["tls_server_names"].as_u64() >= Some(2),
        "{stats}"
    );
    assert_no_secret(&records, &stderr, &[TOKEN]);
}

/// A client that waits before its hello: the use goes out named by DNS (in scope) after a
/// second, and the hello that comes later naming another server is still compared when it
/// comes: the use again, claimed, and an out-of-scope finding. Before, a hello later than a
/// second was not looked at.
#[test]
fn a_late_hello_naming_another_server_is_still_compared() {
    require_root();
    let user = user_with_netrc("latehello");
    let dir = scratch_dir("latehello");
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=evil.example", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem")));
    let ns = Netns::create("latehello", &["10.77.0.1/24", "10.77.0.10/24"], "10.77.0.1");
    let _server = KillOnDrop(
        ns.command("openssl")
            .args(["s_server", "-quiet", "-accept", "10.77.0.10:443", "-cert"])
            .arg(dir.join("cert.pem"))
            .arg("-key")
            .arg(dir.join("key.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    let mut k = Keytrail::start(&[]);
    let _dnsmasq = ns.dnsmasq(&["--address=/api.github.com/10.77.0.10"]);
    ns.wait_until_resolves("api.github.com");
    let script = r#"
import os, socket, ssl, time
open(os.path.expanduser('~/.netrc')).read()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
raw = socket.create_connection(('api.github.com', 443), timeout=5)
time.sleep(2.5)
with ctx.wrap_socket(raw, server_hostname='evil.example') as s:
    s.do_handshake()
"#;
    let pid = run_pid(ns.command_as(&user, "python3").args(["-c", script]));
    let first = k.wait_for("the use, named by DNS", WAIT, |r| {
        endpoint_named(r, "credential_use", pid, "api.github.com", "dns")
    });
    assert_eq!(first["endpoint"]["host_claimed"], Value::Null, "{first}");
    let finding = k.wait_for("out-of-scope-use for the late claim", WAIT, |r| {
        r["type"] == "finding"
            && r["rule"] == "out-of-scope-use"
            && r["process"]["pid"] == pid
            && r["endpoint"]["host_claimed"] == "evil.example"
    });
    assert_eq!(finding["endpoint"]["host"], "api.github.com", "{finding}");
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[TOKEN]);
}

/// A resolver asked over an IPv6 socket, as `::ffff:10.77.0.1` (dual-stack programs do): the
/// kernel runs the IPv4 sendmsg hook for a mapped address, so the server the answer must come
/// from is the IPv4 address its packets carry, and the answer names the connect that follows.
#[test]
fn an_ipv4_resolver_asked_over_an_ipv6_socket_still_names() {
    require_root();
    let user = user_with_netrc("dnsmapped");
    let ns = Netns::create("dnsmapped", &["10.77.0.1/24", "10.77.0.10/24"], "10.77.0.1");
    let mut k = Keytrail::start(&[]);
    let _dnsmasq = ns.dnsmasq(&["--address=/api.github.com/10.77.0.10"]);
    ns.wait_until_resolves("api.github.com");
    let script = r#"
import os, socket, struct
open(os.path.expanduser('~/.netrc')).read()
query = struct.pack('>HHHHHH', 0x6b75, 0x0100, 1, 0, 0, 0)
query += b''.join(bytes([len(p)]) + p for p in [b'api', b'github', b'com']) + b'\0'
query += struct.pack('>HH', 1, 1)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(query, ('::ffff:10.77.0.1', 53))
answer = s.recv(512)
try:
    socket.create_connection((socket.inet_ntoa(answer[-4:]), 443), timeout=3).close()
except OSError:
    pass
"#;
    let pid = run_pid(ns.command_as(&user, "python3").args(["-c", script]));
    let used = k.wait_for("the use, named by DNS", WAIT, |r| {
        endpoint_named(r, "credential_use", pid, "api.github.com", "dns")
    });
    assert_eq!(used["endpoint"]["ip"], "10.77.0.10", "{used}");
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[TOKEN]);
}

/// A DNS server that answers badly: garbage, an answer cut short, one too long for the kernel
/// to keep, then a good one that names 10.77.1.5 good.example.
const BAD_SERVER: &str = r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('10.77.1.1', 53))
def answer(query, count, ip):
    qid = query[:2]
    question = query[12:]
    head = qid + struct.pack('>HHHHH', 0x8180, 1, count, 0, 0)
    record = b'\xc0\x0c' + struct.pack('>HHIH', 1, 1, 60, 4) + socket.inet_aton(ip)
    return head + question + record * count
replies = [
    lambda q: b'\xde\xad\xbe\xef' * 3,
    lambda q: answer(q, 1, '10.77.1.9')[:-9],
    lambda q: answer(q, 200, '10.77.1.9'),
    lambda q: answer(q, 1, '10.77.1.5'),
]
for reply in replies:
    query, peer = s.recvfrom(4096)
    s.sendto(reply(query), peer)
"#;

/// Asks four times on one socket, then connects to the last answer's address.
const ASKING_CLIENT: &str = r#"
import os, socket, struct
open(os.path.expanduser('~/.netrc')).read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
query = struct.pack('>HHHHHH', 0x4b54, 0x0100, 1, 0, 0, 0) + b'\x04good\x07example\x00' + struct.pack('>HH', 1, 1)
for _ in range(4):
    s.sendto(query, ('10.77.1.1', 53))
    s.recvfrom(65536)
try:
    socket.create_connection(('10.77.1.5', 80), timeout=3).close()
except OSError:
    pass
"#;

#[test]
fn malformed_and_truncated_dns_is_counted_and_ignored() {
    require_root();
    let user = user_with_netrc("baddns");
    let ns = Netns::create("bad", &["10.77.1.1/24", "10.77.1.5/24"], "10.77.1.1");
    let mut k = Keytrail::start(&[]);
    let _server = KillOnDrop(
        ns.command("python3")
            .args(["-c", BAD_SERVER])
            .spawn()
            .expect("python3"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let pid = run_pid(ns.command_as(&user, "python3").args(["-c", ASKING_CLIENT]));
    k.wait_for("the connection named by the good answer", WAIT, |r| {
        endpoint_named(r, "connection", pid, "good.example", "dns")
    });
    let (records, _) = k.stop();
    let names = &records.iter().find(|r| r["type"] == "stats").unwrap()["names"];
    assert!(names["dns_malformed"].as_u64() >= Some(2), "{names}");
    assert!(names["dns_truncated"].as_u64() >= Some(1), "{names}");
}

/// An answer that matches no query its socket sent names nothing: here another socket on a
/// port-53 address (low ports are opened to users in the test's namespace) races the real
/// server with a forged answer for the same question under a wrong id, before the real answer
/// comes. Before answers were matched to queries, the forged address took the name and the
/// scope. (An attacker who guesses the id, or runs the server the process asks, is not stopped
/// by this: see the README's threat model.)
#[test]
fn a_forged_dns_answer_names_nothing() {
    require_root();
    let user = user_with_netrc("dnsforge");
    let ns = Netns::create(
        "dnsforge",
        &[
            "10.77.0.1/24",
            "10.77.0.9/24",
            "10.77.0.10/24",
            "10.77.0.66/24",
        ],
        "10.77.0.1",
    );
    let mut k = Keytrail::start(&[]);
    let _dnsmasq = ns.dnsmasq(&["--address=/api.github.com/10.77.0.10"]);
    ns.wait_until_resolves("api.github.com");
    // The forger is an ordinary user: let users bind low ports in this namespace.
    run(ns
        .command("sysctl")
        .args(["-qw", "net.ipv4.ip_unprivileged_port_start=0"]));
    // The client sends its query (id 0x1234) unconnected, so a datagram from any port-53
    // address reaches it; the forger answers first with another id and address 10.77.0.66.
    let script = r#"
import os, socket, struct
open(os.path.expanduser('~/.netrc')).read()
def message(id, flags, answer_ip=None):
    q = b''.join(bytes([len(p)]) + p for p in [b'api', b'github', b'com']) + b'\0' + struct.pack('>HH', 1, 1)
    head = struct.pack('>HHHHHH', id, flags, 1, 1 if answer_ip else 0, 0, 0)
    if answer_ip:
        q += b'\xc0\x0c' + struct.pack('>HHIH', 1, 1, 300, 4) + socket.inet_aton(answer_ip)
    return head + q
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.bind(('10.77.0.1', 0))
client.sendto(message(0x1234, 0x0100), ('10.77.0.1', 53))
forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
forger.bind(('10.77.0.9', 53))
forger.sendto(message(0x4321, 0x8180, '10.77.0.66'), client.getsockname())
client.settimeout(3)
for _ in range(2):
    client.recvfrom(512)
try:
    socket.create_connection(('10.77.0.66', 443), timeout=3).close()
except OSError:
    pass
"#;
    let pid = run_pid(ns.command_as(&user, "python3").args(["-c", script]));
    let used = k.wait_for("the use of the forged address", WAIT, |r| {
        r["type"] == "credential_use"
            && r["process"]["pid"] == pid
            && r["endpoint"]["ip"] == "10.77.0.66"
    });
    assert_eq!(used["endpoint"]["host"], Value::Null, "{used}");
    let (records, stderr) = k.stop();
    let stats = records.iter().find(|r| r["type"] == "stats").unwrap();
    // The forgery came from another address than the one asked: the kernel did not report it.
    assert!(
        stats["names"]["dns_unsolicited"].as_u64() >= Some(1),
        "{stats}"
    );
    assert!(stats["names"]["dns_answers"].as_u64() >= Some(1), "{stats}");
    assert_no_secret(&records, &stderr, &[TOKEN]);
}

/// An answer from a DNS server the process chose, not one the host set, names nothing: a user
/// who asks a server of their own for api.github.com (as `dig @server` does) and connects where
/// it says is out of scope, as with no DNS at all; the same name through the namespace's
/// resolver names its address. Before, any server's answer named the address and silenced the
/// scope.
#[test]
fn an_answer_from_a_server_the_process_chose_names_nothing() {
    require_root();
    let user = user_with_netrc("dnschosen");
    let ns = Netns::create(
        "dnschosen",
        &[
            "10.77.0.1/24",
            "10.77.0.2/24",
            "10.77.0.10/24",
            "10.77.0.66/24",
        ],
        "10.77.0.1",
    );
    let mut k = Keytrail::start(&[]);
    let _resolver = ns.dnsmasq(&["--address=/api.github.com/10.77.0.10"]);
    let _chosen = ns.dnsmasq_on("10.77.0.2", &["--address=/api.github.com/10.77.0.66"]);
    ns.wait_until_resolves("api.github.com");
    let script = r#"
import os, socket, struct
open(os.path.expanduser('~/.netrc')).read()
query = struct.pack('>HHHHHH', 0x6b74, 0x0100, 1, 0, 0, 0)
query += b''.join(bytes([len(p)]) + p for p in [b'api', b'github', b'com']) + b'\0'
query += struct.pack('>HH', 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
for _ in range(10):
    s.sendto(query, ('10.77.0.2', 53))
    try:
        answer = s.recv(512)
        break
    except socket.timeout:
        pass
for target in [socket.inet_ntoa(answer[-4:]), 'api.github.com']:
    try:
        socket.create_connection((target, 443), timeout=3).close()
    except OSError:
        pass
"#;
    let pid = run_pid(ns.command_as(&user, "python3").args(["-c", script]));
    let finding = k.wait_for(
        "out-of-scope-use at the chosen server's address",
        WAIT,
        |r| {
            r["type"] == "finding"
                && r["rule"] == "out-of-scope-use"
                && r["process"]["pid"] == pid
                && r["endpoint"]["ip"] == "10.77.0.66"
        },
    );
    assert_eq!(finding["endpoint"]["host"], Value::Null, "{finding}");
    k.wait_for("the use named by the namespace's resolver", WAIT, |r| {
        endpoint_named(r, "credential_use", pid, "api.github.com", "dns")
            && r["endpoint"]["ip"] == "10.77.0.10"
    });
    let (records, stderr) = k.stop();
    let stats = records.iter().find(|r| r["type"] == "stats").unwrap();
    assert!(
        stats["names"]["dns_untrusted"].as_u64() >= Some(1),
        "{stats}"
    );
    assert!(
        stderr.contains("DNS answers name endpoints when they come from:")
            && stderr.contains("10.77.0.1"),
        "the log says which resolvers are trusted:\n{stderr}"
    );
    assert_no_secret(&records, &stderr, &[TOKEN]);
}
