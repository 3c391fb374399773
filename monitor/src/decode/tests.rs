use super::*;
use monitor_common::AccessHook;

#[test]
fn decodes_exec_with_argv() {
    let bytes = encode::exec(
        42,
        1,
        "python3",
        "/usr/bin/python3",
        &["python3", "-c", "x"],
    );
    let KernelEvent::Exec(e) = decode(&bytes).unwrap() else {
        panic!("not an exec")
    };
    assert_eq!((e.pid, e.ppid, e.uid), (42, 1, 1000));
    assert_eq!(e.comm, "python3");
    assert_eq!(e.filename, "/usr/bin/python3");
    assert_eq!(e.argv, ["python3", "-c", "x"]);
    assert_eq!(e.loginuid, Some(1000));
    assert_eq!(e.sessionid, None, "u32::MAX is the kernel's 'unset'");
}

#[test]
fn decodes_the_environment_whole_or_cut() {
    let whole = b"HOME=/root\0KEYTRAIL_CONTEXT=task-1\0";
    let bytes = encode::exec_with_env(1, 0, "sh", "/bin/sh", &["sh"], whole, 0);
    let KernelEvent::Exec(e) = decode(&bytes).unwrap() else {
        panic!("not an exec")
    };
    assert_eq!(e.env.get("KEYTRAIL_CONTEXT"), Some("task-1"));
    assert_eq!(format!("{:?}", e.env), r#"["HOME", "KEYTRAIL_CONTEXT"]"#);

    // A head ending mid-variable and a tail starting mid-variable: both partials dropped.
    let cut = b"A=1\0PARTIAL_HE";
    let mut buf = cut.to_vec();
    buf.extend_from_slice(b"AD_TAIL=x\0GH_TOKEN=ghp_y\0");
    let bytes = encode::exec_with_env(1, 0, "sh", "/bin/sh", &["sh"], &buf, cut.len() as u32);
    let KernelEvent::Exec(e) = decode(&bytes).unwrap() else {
        panic!("not an exec")
    };
    let names: Vec<&str> = e.env.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["A", "GH_TOKEN"]);
}

#[test]
fn decodes_file_access_and_connect() {
    let access = decode(&encode::file_access(7, 0x80_0001, 99, AccessHook::Mmap)).unwrap();
    assert!(matches!(
        access,
        KernelEvent::FileAccess {
            pid: 7,
            hook: Hook::Mmap,
            ..
        }
    ));
    let KernelEvent::Connect(c) = decode(&encode::connect4(7, [127, 0, 0, 1], 8080)).unwrap()
    else {
        panic!("not a connect")
    };
    assert_eq!(
        (c.ip.to_string(), c.port, c.protocol, c.enforcement),
        ("127.0.0.1".into(), 8080, Protocol::Tcp, None)
    );
    for (decision, enforced) in [
        (decision::DENIED, Some(Enforced::Denied)),
        (decision::WOULD_DENY, Some(Enforced::WouldDeny)),
        (7, None),
    ] {
        let bytes = encode::connect4_decided(7, [10, 0, 0, 1], 443, decision);
        let Ok(KernelEvent::Connect(c)) = decode(&bytes) else {
            panic!("not a connect")
        };
        assert_eq!(c.enforcement, enforced, "decision {decision}");
    }
}

#[test]
fn short_and_unknown_events_are_errors_not_panics() {
    let bytes = encode::exec(1, 0, "a", "b", &[]);
    assert!(matches!(
        decode(&bytes[..40]),
        Err(DecodeError::Short { .. })
    ));
    assert!(matches!(
        decode(&bytes[..3]),
        Err(DecodeError::Short { .. })
    ));
    let mut unknown = bytes.clone();
    unknown[0] = 0xff;
    assert_eq!(decode(&unknown), Err(DecodeError::UnknownKind(0xff)));
}
