//! Helpers for the live-kernel tests: start the real `keytrail run --format json`, make a
//! throwaway user with fixture credentials, wait for records, and check no secret leaked.
use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, channel},
    time::{Duration, Instant},
};

use serde_json::Value;

mod netns;
mod tls;
pub use netns::Netns;
pub use tls::{TestCa, require_program};

/// Fails the test, saying why, when it cannot run here: a live-kernel test that passes without
/// having run would hide a broken probe.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "live-kernel tests load kernel probes and need root: run them with `cargo xtask test`"
    );
}

pub fn keytrail_bin() -> PathBuf {
    std::env::var_os("KEYTRAIL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/keytrail")
        })
}

/// A running `keytrail run --format json`.
pub struct Keytrail {
    child: Child,
    lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Every record seen so far.
    pub records: Vec<Value>,
}

impl Keytrail {
    /// Starts keytrail and waits for its `ready` record.
    pub fn start(extra_args: &[&str]) -> Self {
        Self::start_with_env(extra_args, &[])
    }

    /// The same, with variables set in keytrail's environment.
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Self {
        let mut child = Command::new(keytrail_bin())
            .args(["run", "--format", "json"])
            .args(extra_args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keytrail (built by `cargo xtask test`)");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut keytrail = Self {
            child,
            lines,
            stderr: Some(stderr),
            records: Vec::new(),
        };
        let ready = keytrail.wait_for("ready record", Duration::from_secs(20), |r| {
            r["type"] == "ready"
        });
        assert_eq!(
            keytrail.records[0], ready,
            "ready is printed before any other record"
        );
        keytrail
    }

    /// Waits until a record matches `predicate`, failing the test after `timeout`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        predicate: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(found) = self.records.iter().find(|r| predicate(r)) {
            return found.clone();
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            let record: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(
                record["type"].is_string() && record["time"].is_string(),
                "type and time on every record: {line}"
            );
            self.records.push(record.clone());
            if predicate(&record) {
                return record;
            }
        }
        panic!("no {what} within {timeout:?}; records:\n{}", self.dump());
    }

    /// Collects records for `duration` (to check that something did not happen).
    pub fn settle(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => self.records.push(serde_json::from_str(&line).unwrap()),
                Err(_) => break,
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether keytrail is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGINT, then everything keytrail printed: (records, stderr). The last record is `stats`.
    pub fn stop(self) -> (Vec<Value>, String) {
        self.stop_with(libc::SIGINT)
    }

    /// `stop`, with another signal.
    pub fn stop_with(mut self, signal: i32) -> (Vec<Value>, String) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.records.push(serde_json::from_str(&line).unwrap());
        }
        let dump = self.dump();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        assert!(
            status.success(),
            "keytrail exited with {status}; stderr:\n{stderr}"
        );
        let last = self.records.last().expect("records");
        assert_eq!(last["type"], "stats", "stats is the last record:\n{dump}");
        (std::mem::take(&mut self.records), stderr)
    }

    /// Kills keytrail with SIGKILL, as a crash would: nothing is flushed, nothing asserted.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn dump(&self) -> String {
        self.records
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A test that fails midway must not leave its daemon attached to the machine: the next test
/// could not attach its own.
impl Drop for Keytrail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A helper process (a local server) killed when the test ends, however it ends.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fails the test if any secret value appears in keytrail's output or logs.
pub fn assert_no_secret(records: &[Value], stderr: &str, secrets: &[&str]) {
    let stdout: String = records.iter().map(|r| r.to_string()).collect();
    for secret in secrets {
        assert!(
            !stdout.contains(secret),
            "secret {secret:?} printed on stdout"
        );
        assert!(
            !stderr.contains(secret),
            "secret {secret:?} printed on stderr"
        );
    }
}

/// A throwaway user whose home holds fixture credentials; removed on drop.
pub struct TestUser {
    pub name: String,
    pub home: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    pub fn create(tag: &str) -> Self {
        let name = format!("kt{tag}{}", std::process::id() % 100_000);
        let home = PathBuf::from("/home").join(&name);
        let _ = Command::new("userdel")
            .args(["-r", &name])
            .stderr(Stdio::null())
            .status();
        run(Command::new("useradd")
            .args(["-m", "-d"])
            .arg(&home)
            .args(["-s", "/bin/sh", &name]));
        let id = |flag: &str| -> u32 {
            let out = run(Command::new("id").args([flag, &name])).stdout;
            String::from_utf8(out).unwrap().trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        Self {
            name,
            home,
            uid,
            gid,
        }
    }

    /// `program` to be run as this user, directly (no su in between, so its pid is the
    /// program's own).
    pub fn command(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(program);
        command
            .uid(self.uid)
            .gid(self.gid)
            .env("HOME", &self.home)
            .current_dir(&self.home);
        command
    }

    /// Writes a fixture file in the home (parents created), owned by the user.
    /// Has git store a credential for `protocol://host` as itself (`git credential-store
    /// store`, which percent-encodes every field) and returns ~/.git-credentials.
    pub fn git_store(&self, protocol: &str, host: &str, username: &str, password: &str) -> PathBuf {
        let mut store = self
            .command("git")
            .args(["credential-store", "store"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("git");
        let input = format!(
            "protocol={protocol}\nhost={host}\nusername={username}\npassword={password}\n\n"
        );
        std::io::Write::write_all(store.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        assert!(
            store.wait().unwrap().success(),
            "git credential-store store"
        );
        self.home.join(".git-credentials")
    }

    pub fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.home.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        run(Command::new("chown")
            .args(["-R", &format!("{0}:{0}", self.name)])
            .arg(&self.home));
        path
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs a command to completion, failing the test if it fails.
/// `keytrail catalog --format json`, one object per credential.
pub fn catalog_json() -> Vec<Value> {
    let out = run(Command::new(keytrail_bin()).args(["catalog", "--format", "json"]));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An empty directory of this test run's own under the temporary directory.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn run(command: &mut Command) -> std::process::Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs a command and returns its pid (for matching records to it).
pub fn run_pid(command: &mut Command) -> u32 {
    let mut child = command
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let pid = child.id();
    let status = child.wait().unwrap();
    assert!(status.success(), "{command:?} failed with {status}");
    pid
}

/// Records of `kind` whose process is `pid`.
pub fn of<'a>(
    records: &'a [Value],
    kind: &'a str,
    pid: u32,
) -> impl Iterator<Item = &'a Value> + 'a {
    records
        .iter()
        .filter(move |r| r["type"] == kind && r["process"]["pid"] == pid)
}

pub fn path_str(path: &Path) -> String {
    path.display().to_string()
}

pub const WAIT: Duration = Duration::from_secs(10);
