use super::*;

fn exec(pid: u32, ppid: u32, comm: &str, start_boot_ns: u64) -> Exec {
    Exec {
        pid,
        ppid,
        uid: 1000,
        loginuid: Some(1000),
        sessionid: Some(3),
        start_boot_ns,
        comm: comm.into(),
        filename: format!("/usr/bin/{comm}"),
        argv: vec![comm.into()],
        argv_cut: false,
        exe_owner: None,
        env: Default::default(),
        boot_ns: start_boot_ns,
    }
}

impl ProcessTracker {
    fn on_exec_plain(&mut self, e: &Exec) {
        self.on_exec(e, &Policy::embedded(), &[], Vec::new());
    }
}

#[test]
fn seeds_itself_from_procfs() {
    let mut tracker = ProcessTracker::new(100, Some("/proc".into()));
    let seeded = tracker
        .seed_from_procfs(
            &Policy::embedded(),
            &mut Catalog::new(
                Vec::new(),
                Secrets::new(crate::fingerprint::Fingerprinter::with_key(1)),
            ),
        )
        .unwrap();
    assert!(seeded > 1);
    let me = tracker
        .get(std::process::id())
        .expect("this test process is seeded");
    assert_eq!(me.uid, unsafe { libc::getuid() });
    assert!(!me.exe.is_empty());
    assert_eq!(me.ppid, std::os::unix::process::parent_id());
}

#[test]
fn fork_inherits_and_exec_replaces_the_image() {
    let mut t = ProcessTracker::new(100, None);
    t.on_exec_plain(&exec(10, 1, "bash", 1_000_000_000));
    t.on_fork(11, 10, 2_000_000_000);
    let child = t.get(11).unwrap();
    assert_eq!(
        (child.comm.as_str(), child.ppid, child.loginuid),
        ("bash", 10, Some(1000))
    );
    assert_eq!(
        child.key,
        ProcKey {
            pid: 11,
            start: 200
        }
    );
    t.on_exec_plain(&exec(11, 10, "cat", 2_000_000_000));
    let child = t.get(11).unwrap();
    assert_eq!(
        (child.comm.as_str(), child.key.start),
        ("cat", 200),
        "exec keeps identity"
    );
    assert_eq!(
        t.ancestors(child.key, 8),
        vec![ProcKey {
            pid: 10,
            start: 100
        }]
    );
}

#[test]
fn a_reused_pid_is_a_new_process_and_the_old_one_stays_findable() {
    let mut t = ProcessTracker::new(100, None);
    t.on_exec_plain(&exec(20, 1, "git-credential", 1_000_000_000));
    let old = t.get(20).unwrap().key;
    t.on_exit(20, 1_500_000_000);
    t.on_fork(20, 1, 3_000_000_000);
    assert_ne!(t.get(20).unwrap().key, old);
    assert_eq!(t.get_key(old).unwrap().comm, "git-credential");
    let gone = t.sweep(1_500_000_000 + EXITED_GRACE_NS + 1);
    assert_eq!(gone, vec![old]);
    assert!(t.get_key(old).is_none());
}

#[test]
fn an_exited_process_stays_while_a_descendant_lives() {
    let mut t = ProcessTracker::new(100, None);
    t.on_exec_plain(&exec(30, 1, "sh", 1_000_000_000));
    t.on_fork(31, 30, 1_100_000_000); // the shell's child, still running
    t.on_fork(32, 30, 1_200_000_000); // a child that exits too
    t.on_exit(32, 1_300_000_000);
    t.on_exit(30, 1_400_000_000);
    let later = 1_400_000_000 + EXITED_GRACE_NS + 1;
    let gone = t.sweep(later);
    assert_eq!(gone.iter().map(|k| k.pid).collect::<Vec<_>>(), vec![32]);
    assert_eq!(
        t.ancestors(t.get(31).unwrap().key, 8).len(),
        1,
        "lineage kept"
    );
    t.on_exit(31, later);
    assert_eq!(t.sweep(later + EXITED_GRACE_NS + 1).len(), 2);
}

/// The processes whose TLS writes are read after a read: the reader and its ancestors while
/// they are the same user in the same session; never init, never past another user (sudo).
#[test]
fn a_readers_same_user_lineage_stops_at_another_user_or_session() {
    let mut t = ProcessTracker::new(100, None);
    t.on_exec_plain(&exec(2, 1, "sshd", 1_000_000_000));
    t.on_exec_plain(&Exec {
        uid: 0,
        ..exec(5, 2, "sudo", 1_100_000_000)
    });
    t.on_exec_plain(&exec(6, 5, "bash", 1_200_000_000));
    t.on_exec_plain(&exec(7, 6, "sh", 1_300_000_000));
    t.on_exec_plain(&exec(8, 7, "cat", 1_400_000_000));
    let pids = |t: &ProcessTracker, pid| -> Vec<u32> {
        t.same_user_lineage(pid, 32).iter().map(|k| k.pid).collect()
    };
    assert_eq!(pids(&t, 8), vec![8, 7, 6], "stops at root's sudo");
    t.on_exec_plain(&Exec {
        sessionid: Some(9),
        ..exec(9, 8, "cat", 1_500_000_000)
    });
    assert_eq!(pids(&t, 9), vec![9], "another session");
    // Daemons: no session, and init above them.
    t.on_exec_plain(&Exec {
        sessionid: None,
        ..exec(20, 1, "agent", 1_600_000_000)
    });
    t.on_exec_plain(&Exec {
        sessionid: None,
        ..exec(21, 20, "python3", 1_700_000_000)
    });
    assert_eq!(pids(&t, 21), vec![21, 20]);
    assert!(pids(&t, 999).is_empty(), "unknown: no process to follow");
}
