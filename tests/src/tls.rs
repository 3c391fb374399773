//! Local TLS servers for the proof-of-use tests: a throwaway test CA (openssl), a server
//! certificate for 127.0.0.1, 127.0.0.2 and localhost, python's http.server over TLS (HTTP/1.1,
//! keep-alive, 401 on /auth/ without credentials, as a git server answers), and node's http2
//! server (h2 by ALPN).
use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crate::{KillOnDrop, run};

/// A test CA and a server certificate it signed, in a directory every user can read.
pub struct TestCa {
    pub dir: PathBuf,
}

impl TestCa {
    pub fn create(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kt-ca-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(&dir));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=keytrail test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:127.0.0.2\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        run(Command::new("chmod").args(["-R", "a+rX"]).arg(&dir));
        Self { dir }
    }

    /// The CA certificate clients are told to trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// python's http.server over TLS on `address`, HTTP/1.1 with keep-alive. Answers 200 "ok",
    /// or 401 with a Basic challenge to a request for /auth/... without `Authorization`.
    pub fn https_server(&self, address: &str) -> (KillOnDrop, u16) {
        self.server("python3", "https_server.py", HTTPS_SERVER, address)
    }

    /// node's http2 secure server on 127.0.0.1: h2 by ALPN.
    pub fn h2_server(&self) -> (KillOnDrop, u16) {
        self.server("node", "h2_server.js", H2_SERVER, "127.0.0.1")
    }

    /// `program` running the server `source` (written to `file`), given the address, a free
    /// port, and the server's certificate and key; once it listens.
    fn server(&self, program: &str, file: &str, source: &str, address: &str) -> (KillOnDrop, u16) {
        let script = self.dir.join(file);
        std::fs::write(&script, source).unwrap();
        let port = free_port(address);
        let server = KillOnDrop(
            Command::new(program)
                .arg(&script)
                .args([address, &port.to_string()])
                .arg(self.dir.join("server.pem"))
                .arg(self.dir.join("server.key"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{program} (the test server {file}): {e}")),
        );
        wait_listening(address, port);
        (server, port)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port(address: &str) -> u16 {
    TcpListener::bind((address, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(address: &str, port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect((address, port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no test server on {address}:{port}");
}

/// Where `program` is: on PATH, else where xtask/setup.sh installs test tools of its own. A
/// test that needs a missing one fails saying so.
pub fn require_program(program: &str, why: &str) -> PathBuf {
    let own = Path::new("/opt/keytrail-test-tools/awscli/bin").join(program);
    let found = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| Path::new(p).is_file())
        })
        .or_else(|| own.is_file().then_some(own));
    found
        .unwrap_or_else(|| panic!("{program} is not installed: {why} (xtask/setup.sh installs it)"))
}

const HTTPS_SERVER: &str = r#"
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        code = 401 if self.path.startswith("/auth/") and "Authorization" not in self.headers else 200
        self.send_response(code)
        if code == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="keytrail test"')
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    do_GET = do_POST = do_PUT = answer
    def log_message(self, *args):
        pass
address, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
server = http.server.ThreadingHTTPServer((address, port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

const H2_SERVER: &str = r#"
const http2 = require('http2'), fs = require('fs');
const [address, port, cert, key] = process.argv.slice(2);
http2.createSecureServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) },
    (req, res) => res.end('ok')).listen(+port, address);
"#;
