//! The command line as users run it: `replay` on what `run` printed (from a file and from
//! stdin), `check-config` on broken policies, and secrets kept out of the text output, the
//! debug logs and `catalog`. Needs root: run with `cargo xtask test`.
use std::{
    fs,
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use keytrail_tests::*;
use serde_json::Value;

const KEY: &str = "kt-cli-private-key-material-7731";
const NETRC_SECRET: &str = "kt-cli-netrc-secret-5518";

fn findings(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("replay prints JSON records"))
        .filter(|r| r["type"] == "finding")
        .collect()
}

#[test]
fn replay_finds_in_captured_live_output_what_run_found_from_a_file_and_from_stdin() {
    require_root();
    let user = TestUser::create("replay");
    let key = user.write(".ssh/id_ed25519", &format!("{KEY}\n"));
    let mut k = Keytrail::start(&[]);
    let cat = run_pid(user.command("cat").arg(&key));
    k.wait_for("unexpected-reader, live", Duration::from_secs(10), |r| {
        r["type"] == "finding" && r["rule"] == "unexpected-reader" && r["process"]["pid"] == cat
    });
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[KEY]);
    let captured = std::env::temp_dir().join(format!("kt-captured-{}.ndjson", std::process::id()));
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    fs::write(&captured, &text).unwrap();

    let from_file = Command::new(keytrail_bin())
        .args(["replay", "--format", "json"])
        .arg(&captured)
        .output()
        .unwrap();
    assert!(from_file.status.success(), "{from_file:?}");
    let replayed = findings(&from_file.stdout);
    assert!(
        replayed
            .iter()
            .any(|f| f["rule"] == "unexpected-reader" && f["process"]["pid"] == cat),
        "replay finds the unexpected reader: {replayed:?}"
    );

    let mut child = Command::new(keytrail_bin())
        .args(["replay", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let from_stdin = child.wait_with_output().unwrap();
    assert!(from_stdin.status.success(), "{from_stdin:?}");
    assert_eq!(
        findings(&from_stdin.stdout),
        replayed,
        "stdin and a file replay alike"
    );
    fs::remove_file(captured).unwrap();
}

#[test]
fn check_config_refuses_a_broken_policy_naming_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("kt-cli-policy-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "kind.toml",
            "[[credentials]]\nkind = \"awz\"\npaths = [\"/x\"]\n",
            2,
            "awz",
        ),
        (
            "field.toml",
            "[findings]\nfold_window = \"1m\"\nfold_windw = \"1s\"\n",
            3,
            "fold_windw",
        ),
        ("syntax.toml", "[[credentials]\nkind = \"aws\"\n", 1, ""),
    ];
    for (name, text, line, mentions) in cases {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        let out = Command::new(keytrail_bin())
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name} is refused as bad usage");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let at = format!("{}:{line}:", path.display());
        let rest = stderr
            .split_once(&at)
            .unwrap_or_else(|| panic!("{name}: the error names {at}: {stderr}"))
            .1;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        assert!(
            !column.is_empty() && rest[column.len()..].starts_with(':'),
            "{name}: a column follows the line: {stderr}"
        );
        assert!(stderr.contains(mentions), "{name}: {stderr}");
    }
    let good = dir.join("good.toml");
    let default = run(Command::new(keytrail_bin()).args(["policy", "--default"])).stdout;
    fs::write(&good, default).unwrap();
    let out = run(Command::new(keytrail_bin()).arg("check-config").arg(&good));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok:"));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn no_secret_in_text_output_debug_logs_or_the_catalog() {
    require_root();
    let user = TestUser::create("text");
    let netrc = user.write(
        ".netrc",
        &format!("machine 127.0.0.1 login bot password {NETRC_SECRET}\n"),
    );
    let key = user.write(".ssh/id_ed25519", &format!("{KEY}\n"));
    let mut child = Command::new(keytrail_bin())
        .args(["run", "--format", "text", "-vv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // Read apart: -vv writes more than a pipe holds (aya's relocations), and a full pipe
    // would stop keytrail.
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr_pipe, &mut all);
        all
    });
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text.contains(" ready ") && Instant::now() < deadline {
        stdout.read_line(&mut text).unwrap();
    }
    assert!(text.contains(" ready "), "a ready line: {text}");
    let cat = run_pid(user.command("cat").arg(&netrc).arg(&key));
    // A reader with the secret in its arguments, as a careless script would pass it.
    let script = format!("open({:?}).read()", path_str(&netrc));
    let python = run_pid(user.command("python3").args(["-c", &script, NETRC_SECRET]));
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    text.push_str(&rest);
    child.wait().unwrap();
    let stderr = stderr_reader.join().unwrap();
    assert!(
        stderr.contains("capabilities dropped to"),
        "-vv shows keytrail's own debug lines:\n{stderr}"
    );
    for reader in [format!("cat[{cat}]"), format!("python3[{python}]")] {
        assert!(
            text.contains(&reader),
            "{reader}'s read is in the text output:\n{text}"
        );
    }
    for secret in [NETRC_SECRET, KEY] {
        assert!(!text.contains(secret), "{secret} in the text output");
        assert!(!stderr.contains(secret), "{secret} in the logs");
    }

    for format in ["text", "json"] {
        let out = run(Command::new(keytrail_bin()).args(["catalog", "--format", format, "-vv"]));
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(listed.contains(&path_str(&netrc)), "{format}: {listed}");
        for secret in [NETRC_SECRET, KEY] {
            assert!(
                !listed.contains(secret),
                "{secret} in catalog --format {format}"
            );
            assert!(
                !String::from_utf8_lossy(&out.stderr).contains(secret),
                "{secret} in catalog's logs"
            );
        }
    }
}

#[test]
fn a_users_symlink_cannot_make_roots_key_a_credential_of_theirs() {
    require_root();
    let user = TestUser::create("redir");
    let roots = std::env::temp_dir().join(format!("kt-roots-key-{}", std::process::id()));
    fs::write(&roots, format!("{KEY}\n")).unwrap();
    fs::create_dir_all(user.home.join(".aws")).unwrap();
    std::os::unix::fs::symlink(&roots, user.home.join(".aws/credentials")).unwrap();
    let netrc = user.write(".netrc", "machine 127.0.0.1 login bot password x\n");
    let out = run(Command::new(keytrail_bin()).args(["catalog", "--format", "json"]));
    let listed = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        listed.contains(&path_str(&netrc)),
        "the user's own file is: {listed}"
    );
    assert!(
        !listed.contains(".aws/credentials"),
        "the link out of the home is not a credential: {listed}"
    );
    assert!(
        stderr.contains("not watching") && stderr.contains("out of the home"),
        "and the log says why: {stderr}"
    );
    fs::remove_file(roots).unwrap();
}
