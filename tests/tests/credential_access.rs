//! Credential access: every path to a watched file counts, every read mechanism is seen, and
//! nothing else is reported. Needs root: run with `cargo xtask test`.
use std::{fs, os::unix::fs::symlink, process::Command, time::Duration};

use keytrail_tests::*;

const SECRET: &str = "kt-fixture-secret-4f1c9e";

fn access_by(k: &mut Keytrail, pid: u32, path: &str) -> serde_json::Value {
    k.wait_for(&format!("credential_access by pid {pid}"), WAIT, |r| {
        r["type"] == "credential_access"
            && r["process"]["pid"] == pid
            && r["credential"]["path"] == path
    })
}

#[test]
fn reads_through_symlink_hard_link_and_relative_path_are_seen() {
    require_root();
    let user = TestUser::create("paths");
    let netrc = user.write(
        ".netrc",
        &format!("machine example.com login u password {SECRET}\n"),
    );
    let netrc_path = path_str(&netrc);
    let link = std::env::temp_dir().join(format!("kt-netrc-link-{}", std::process::id()));
    let _ = fs::remove_file(&link);
    symlink(&netrc, &link).unwrap();
    let hard = user.home.join("notes-hardlink");
    fs::hard_link(&netrc, &hard).unwrap();
    let unrelated = user.write("unrelated.txt", "nothing to see");

    let mut k = Keytrail::start(&[]);
    let by_symlink = run_pid(Command::new("cat").arg(&link));
    let by_hard_link = run_pid(Command::new("cat").arg(&hard));
    let by_relative = run_pid(Command::new("cat").arg(".netrc").current_dir(&user.home));
    let by_unrelated = run_pid(Command::new("cat").arg(&unrelated));
    for pid in [by_symlink, by_hard_link, by_relative] {
        let record = access_by(&mut k, pid, &netrc_path);
        assert_eq!(record["credential"]["kind"], "netrc");
        assert_eq!(record["process"]["comm"], "cat");
        assert_eq!(record["process"]["exe"], "/usr/bin/cat");
        assert_eq!(record["process"]["ppid"], std::process::id());
        assert_eq!(record["hook"], "read");
    }
    k.settle(Duration::from_millis(300));
    let (records, stderr) = k.stop();
    assert_eq!(
        of(&records, "credential_access", by_unrelated).count(),
        0,
        "an unrelated file is not reported"
    );
    assert!(
        !records
            .iter()
            .any(|r| r.to_string().contains("unrelated.txt"))
    );
    assert_no_secret(&records, &stderr, &[SECRET]);
    let _ = fs::remove_file(link);
}

#[test]
fn a_process_reading_in_a_loop_is_reported_once() {
    require_root();
    let user = TestUser::create("once");
    let token = user.write(".vault-token", SECRET);
    let mut k = Keytrail::start(&[]);
    let script = format!("for i in range(50): open({:?}).read()", path_str(&token));
    let pid = run_pid(Command::new("python3").args(["-c", &script]));
    access_by(&mut k, pid, &path_str(&token));
    k.settle(Duration::from_millis(300));
    let (records, stderr) = k.stop();
    assert_eq!(of(&records, "credential_access", pid).count(), 1);
    assert_no_secret(&records, &stderr, &[SECRET]);
}

#[test]
fn python_reading_through_mmap_is_seen() {
    require_root();
    let user = TestUser::create("mmap");
    let key = user.write(
        ".aws/credentials",
        &format!("[default]\naws_secret_access_key = {SECRET}\n"),
    );
    // Warm the page cache first: a cached page is mapped by fault-around, not filemap_fault.
    run(Command::new("cat").arg(&key));
    let mut k = Keytrail::start(&[]);
    let script = format!(
        "import mmap\nf = open({:?}, 'rb')\nm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\nassert m[0:1] == b'['",
        path_str(&key)
    );
    let pid = run_pid(Command::new("python3").args(["-c", &script]));
    let record = access_by(&mut k, pid, &path_str(&key));
    assert_eq!(record["credential"]["kind"], "aws");
    assert_eq!(
        record["hook"], "mmap",
        "seen by a filemap fault hook, not at open"
    );
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[SECRET]);
}

#[test]
fn a_credential_on_tmpfs_is_seen_through_the_open_hook() {
    require_root();
    let dir = std::env::temp_dir().join(format!("kt-tmpfs-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "none"])
        .arg(&dir));
    let token = dir.join("token");
    fs::write(&token, SECRET).unwrap();
    let watch = format!("{}=kube", path_str(&token));

    let mut k = Keytrail::start(&["--watch", &watch]);
    let ready = k.records[0].clone();
    let hooks = ready["hooks"].to_string();
    assert!(
        hooks.contains("lsm/file_open") || hooks.contains("sys_exit_openat"),
        "an open hook is used: {hooks}"
    );
    let pid = run_pid(Command::new("cat").arg(&token));
    let record = access_by(&mut k, pid, &path_str(&token));
    assert_eq!(
        (
            record["credential"]["kind"].as_str(),
            record["hook"].as_str()
        ),
        (Some("kube"), Some("open"))
    );
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[SECRET]);
    run(Command::new("umount").arg(&dir));
    let _ = fs::remove_dir(dir);
}

#[test]
fn credentials_that_appear_or_are_replaced_after_start_are_watched() {
    require_root();
    let user = TestUser::create("late");
    let mut k = Keytrail::start(&[]);
    // ~/.kube does not exist yet: keytrail must notice the directory, then the file.
    let config = user.write(".kube/config", &format!("token: {SECRET}\n"));
    std::thread::sleep(Duration::from_millis(500));
    let first = run_pid(Command::new("cat").arg(&config));
    access_by(&mut k, first, &path_str(&config));

    // Replace by rename, as the user's editors and CLIs do: a new inode under the same name,
    // the user's own (a file in a home that is not its owner's is refused).
    let tmp = user.home.join(".kube/config.new");
    fs::write(&tmp, format!("token: {SECRET}-2\n")).unwrap();
    std::os::unix::fs::chown(&tmp, Some(user.uid), Some(user.gid)).unwrap();
    fs::rename(&tmp, &config).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let second = run_pid(Command::new("cat").arg(&config));
    access_by(&mut k, second, &path_str(&config));
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[SECRET]);
}

/// A Kubernetes node's pod tokens, as kubelet's atomic writer lays them out under
/// /var/lib/kubelet/pods (the default policy's path): the token in a timestamped directory,
/// `..data` a link to it, `token` a link through `..data`. Writes like kubelet's, on this host.
struct Pods {
    dir: std::path::PathBuf,
    /// What this test made and removes: its pods, and the directories that were missing.
    made: Vec<std::path::PathBuf>,
}

impl Pods {
    fn new() -> Self {
        let dir = std::path::PathBuf::from("/var/lib/kubelet/pods");
        let made = ["/var/lib/kubelet", "/var/lib/kubelet/pods"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .filter(|d| !d.exists())
            .collect();
        fs::create_dir_all(&dir).unwrap();
        Self { dir, made }
    }

    /// Projects (or rotates) `pod`'s token holding `secret`; returns the `token` path.
    fn project(&mut self, pod: &str, stamp: &str, secret: &str) -> String {
        let pod_dir = self.dir.join(format!("kt-{}-{pod}", std::process::id()));
        if !self.made.contains(&pod_dir) {
            self.made.push(pod_dir.clone());
        }
        let volume = pod_dir.join("volumes/kubernetes.io~projected/kube-api-access-kt");
        fs::create_dir_all(volume.join(stamp)).unwrap();
        fs::write(volume.join(stamp).join("token"), secret).unwrap();
        let old = fs::read_link(volume.join("..data")).ok();
        symlink(stamp, volume.join("..data_tmp")).unwrap();
        fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
        if let Some(old) = old {
            fs::remove_dir_all(volume.join(old)).unwrap();
        }
        let token = volume.join("token");
        if fs::symlink_metadata(&token).is_err() {
            symlink("..data/token", &token).unwrap();
        }
        path_str(&token)
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Reads `token` with cat until keytrail reports a read of it it had not reported before
/// (a token that appeared or was rotated is watched once the catalog has seen it).
fn read_until_seen(k: &mut Keytrail, token: &str) -> serde_json::Value {
    let seen = |r: &serde_json::Value| {
        r["type"] == "credential_access" && r["credential"]["path"] == token
    };
    let before = k.records.iter().filter(|r| seen(r)).count();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        run(Command::new("cat").arg(token));
        k.settle(Duration::from_millis(200));
        if let Some(found) = k.records.iter().filter(|r| seen(r)).nth(before) {
            return found.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no read of {token} seen; records:\n{}",
            k.dump()
        );
    }
}

#[test]
fn pod_tokens_on_a_node_are_watched_as_pods_come_and_tokens_rotate() {
    require_root();
    let mut pods = Pods::new();
    let first = pods.project("a", "..2026_12_02_10_00_00.1", &format!("{SECRET}.a1"));
    let mut k = Keytrail::start(&[]);
    let access = read_until_seen(&mut k, &first);
    assert_eq!(access["credential"]["kind"], "kube");
    // A pod scheduled after keytrail started.
    let second = pods.project("b", "..2026_12_02_10_05_00.1", &format!("{SECRET}.b1"));
    read_until_seen(&mut k, &second);
    // Kubelet rotates the first pod's token: a new file behind the same path.
    pods.project("a", "..2026_12_02_11_00_00.2", &format!("{SECRET}.a2"));
    read_until_seen(&mut k, &first);
    let (records, stderr) = k.stop();
    assert_no_secret(&records, &stderr, &[SECRET]);
}

/// An account added after keytrail started (useradd writes the account, then makes its
/// home) has its home looked in too: before, homes were read once, at start.
#[test]
fn an_account_added_after_start_is_watched() {
    require_root();
    let mut k = Keytrail::start(&[]);
    let user = TestUser::create("newacct");
    let netrc = user.write(".netrc", &format!("machine x.test password {SECRET}\n"));
    // The user database is looked at once a second.
    std::thread::sleep(Duration::from_millis(2500));
    let reader = run_pid(Command::new("cat").arg(&netrc));
    access_by(&mut k, reader, &path_str(&netrc));
    let (records, stderr) = k.stop();
    assert!(
        stderr.contains("new home directories") && stderr.contains(&path_str(&user.home)),
        "{stderr}"
    );
    assert_no_secret(&records, &stderr, &[SECRET]);
}

#[test]
fn a_directory_deleted_and_made_again_is_watched_again() {
    require_root();
    let user = TestUser::create("redo");
    let old = user.write(".ssh/id_ed25519", "old key\n");
    let mut k = Keytrail::start(&[]);
    // As a user starting over would: the whole directory goes, a new one and a new key come.
    fs::remove_dir_all(old.parent().unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fs::create_dir_all(old.parent().unwrap()).unwrap();
    run(Command::new("chown")
        .args(["-R", &format!("{0}:{0}", user.name)])
        .arg(&user.home));
    std::thread::sleep(Duration::from_millis(300));
    run(user
        .command("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&old));
    std::thread::sleep(Duration::from_millis(500));
    let reader = run_pid(Command::new("cat").arg(&old));
    access_by(&mut k, reader, &path_str(&old));
    k.stop();
}

/// A probe that fails to load is replaced by its fallback, and the records look the same: only
/// the hooks in `ready` tell. On a kernel with the filemap tracepoints (6.11+, this host's
/// 6.18), the preferred tp_btf hooks must be the ones serving.
#[test]
fn this_kernel_gets_the_preferred_read_hooks() {
    require_root();
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let version = (numbers.next().unwrap(), numbers.next().unwrap());
    if version < (6, 11) {
        eprintln!(
            "\n*** SKIPPED this_kernel_gets_the_preferred_read_hooks: Linux {} has no filemap \
             tracepoints (6.11+); the kernel matrix checks the fallbacks there ***\n",
            release.trim()
        );
        return;
    }
    let k = Keytrail::start(&[]);
    let reads: Vec<(String, bool)> = k.records[0]["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["purpose"] == "credential-read")
        .map(|h| {
            (
                h["hook"].as_str().unwrap().to_owned(),
                h["instead_of"].is_null(),
            )
        })
        .collect();
    let preferred = [
        "tp_btf/mm_filemap_get_pages",
        "tp_btf/mm_filemap_fault",
        "tp_btf/mm_filemap_map_pages",
    ];
    assert_eq!(
        reads,
        preferred.map(|h| (h.to_owned(), true)).to_vec(),
        "the read hooks serving"
    );
    k.stop();
}

/// Credential accesses have a ring buffer of their own: while keytrail is stopped, thousands of
/// processes fill the other ring (exec, fork, exit events) and are lost, counted; a credential
/// read made then is still reported once keytrail runs again. With one shared ring it was lost
/// with them.
#[test]
fn a_flood_of_process_events_cannot_push_out_a_credential_read() {
    require_root();
    let user = TestUser::create("flood");
    let token = user.write(".vault-token", SECRET);
    let mut k = Keytrail::start(&["--stats-interval", "1s"]);
    let pid = k.pid().to_string();
    run(Command::new("kill").args(["-STOP", &pid]));
    let flood = "for i in $(seq 3000); do /bin/true; done";
    let flooder = run_pid(Command::new("sh").args(["-c", flood]));
    let reader = run_pid(Command::new("cat").arg(&token));
    run(Command::new("kill").args(["-CONT", &pid]));
    let record = access_by(&mut k, reader, &path_str(&token));
    assert_eq!(record["hook"], "read");
    // The loss is a finding that names the process that made the flood.
    let blind = k.wait_for("a monitor-blind finding", Duration::from_secs(10), |r| {
        r["type"] == "finding" && r["rule"] == "monitor-blind"
    });
    assert_eq!(blind["process"]["pid"], flooder, "{blind}");
    assert_eq!(blind["severity"], "high");
    assert!(blind.get("credential").is_none(), "{blind}");
    let (records, stderr) = k.stop();
    let stats = records.iter().rfind(|r| r["type"] == "stats").unwrap();
    assert!(
        stats["ringbuf_full"].as_u64() > Some(0),
        "the flood filled the process ring: {stats}"
    );
    assert_eq!(stats["critical_full"], 0, "{stats}");
    assert_no_secret(&records, &stderr, &[SECRET]);
}

/// One user connecting to 20,000 addresses (refused at once: nothing listens) while keytrail is
/// stopped cannot fill the ring of accesses and connects for everyone: past their budget, the
/// user's connects go to the other ring, and root's read made after the flood is still there.
/// Before each user had a budget, the connects filled the critical ring (1 MiB, some 13,000
/// connects) and the read was lost.
#[test]
fn a_flood_of_connects_cannot_push_out_another_users_credential_read() {
    require_root();
    let user = TestUser::create("connflood");
    let token = user.write(".vault-token", SECRET);
    let mut k = Keytrail::start(&["--stats-interval", "1s"]);
    let pid = k.pid().to_string();
    run(Command::new("kill").args(["-STOP", &pid]));
    let flood = r#"
import socket
for i in range(20000):
    s = socket.socket()
    try:
        s.connect(('127.%d.%d.1' % (1 + i // 250, i % 250), 9))
    except OSError:
        pass
    s.close()
"#;
    run(user.command("python3").args(["-c", flood]));
    let reader = run_pid(Command::new("cat").arg(&token));
    run(Command::new("kill").args(["-CONT", &pid]));
    access_by(&mut k, reader, &path_str(&token));
    let (records, stderr) = k.stop();
    let stats = records.iter().rfind(|r| r["type"] == "stats").unwrap();
    assert!(
        stats["critical_demoted"].as_u64() > Some(10_000),
        "the user's connects past the budget went to the other ring: {stats}"
    );
    assert_eq!(stats["critical_full"], 0, "{stats}");
    assert_no_secret(&records, &stderr, &[SECRET]);
}
