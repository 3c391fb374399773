use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Policy, String> {
    Policy::parse(text, Path::new("/etc/keytrail.toml")).map_err(|e| e.to_string())
}

#[test]
fn the_embedded_default_is_valid_and_complete() {
    let p = Policy::embedded();
    assert_eq!(p.context.label, "KEYTRAIL_CONTEXT");
    for kind in [Kind::Aws, Kind::Kube, Kind::Ssh, Kind::Netrc, Kind::Git] {
        assert!(
            p.credentials.iter().any(|c| c.get_ref().kind == kind),
            "{kind} has paths"
        );
    }
    let ssh = p.credential_facts(Kind::Ssh, "/home/a/.ssh/id_ed25519");
    assert!(!ssh.readers.is_empty());
    assert!(ssh.context.is_none());
    let aws = p.credential_facts(Kind::Aws, "/home/a/.aws/credentials");
    assert!(aws.readers.is_empty());
    assert_eq!(aws.scope, p.kind_scope(Kind::Aws));
    assert_eq!(p.secret_variable("AWS_SECRET_ACCESS_KEY"), Some(Kind::Aws));
    assert_eq!(p.secret_variable("GITHUB_TOKEN"), Some(Kind::Github));
    assert_eq!(p.secret_variable("OPENAI_API_KEY"), Some(Kind::Openai));
    assert_eq!(p.secret_variable("SOME_API_KEY"), Some(Kind::Generic));
    assert_eq!(p.secret_variable("PATH"), None);
    assert_eq!(p.fold_window(), Duration::from_secs(60));
    for rule in RuleId::ALL {
        assert!(p.severity(rule).is_some(), "{rule} is on by default");
    }
    assert_eq!(
        p.kind_scope(Kind::Github)
            .check(None, 443, Some("api.github.com")),
        Verdict::Inside
    );
}

#[test]
fn a_home_path_rule_covers_any_home_in_replay() {
    let p = Policy::embedded();
    let rule = p.credential_rule("/home/ci/.aws/credentials").unwrap();
    assert_eq!(rule.kind, Kind::Aws);
    assert!(p.credential_rule("/home/ci/notes.txt").is_none());
}

#[test]
fn errors_name_file_line_and_field() {
    let e = parse("[[credentials]]\nkind = \"awz\"\npaths = [\"/x\"]\n").unwrap_err();
    assert!(e.starts_with("/etc/keytrail.toml:2:"), "{e}");
    assert!(e.contains("field `kind`"), "{e}");
    assert!(e.contains("awz"), "{e}");

    let e = parse("[[credentials]]\nkind = \"aws\"\npaths = [\"/x\"]\ncidrs = [\"10.0.0.0/40\"]\n")
        .unwrap_err();
    assert!(e.starts_with("/etc/keytrail.toml:4:"), "{e}");
    assert!(e.contains("field `cidrs`") && e.contains("prefix"), "{e}");

    let e = parse("[findings]\nfold_windw = \"1s\"\n").unwrap_err();
    assert!(
        e.starts_with("/etc/keytrail.toml:2:") && e.contains("fold_windw"),
        "{e}"
    );

    let e = parse("[[credentials]]\nkind = \"aws\"\npaths = [\"relative/x\"]\n").unwrap_err();
    assert!(
        e.starts_with("/etc/keytrail.toml:1:") && e.contains("must be absolute"),
        "{e}"
    );

    let e = parse("[[contexts]]\nuser = true\ncgroup = \"/a\"\n").unwrap_err();
    assert!(e.contains("exactly one"), "{e}");

    let e = parse("[rules.no-such-rule]\nenabled = false\n").unwrap_err();
    assert!(e.contains("no-such-rule"), "{e}");

    let e = parse("[rules.identity-collapse]\naction = \"deny\"\n").unwrap_err();
    assert!(e.contains("only out-of-scope-use"), "{e}");
    // Read denial: the rule's action, for credentials with readers only.
    let header = "[rules.unexpected-reader]\n";
    let p =
        parse(&DEFAULT_TEXT.replacen(header, &format!("{header}action = \"deny\"\n"), 1)).unwrap();
    let ssh = p.credential_facts(Kind::Ssh, "/home/a/.ssh/id_ed25519");
    assert!(ssh.deny_reads && !ssh.deny, "{ssh:?}");
    assert!(
        !p.credential_facts(Kind::Aws, "/home/a/.aws/credentials")
            .deny_reads
    );
    assert!(
        !Policy::embedded()
            .credential_facts(Kind::Ssh, "/home/a/.ssh/id_ed25519")
            .deny_reads
    );

    // Context refusal: the rule's action while the rule is on (the kernel then follows
    // every exec from start).
    assert!(!Policy::embedded().may_refuse_contexts());
    let header = "[rules.cross-context-reuse]\n";
    let p =
        parse(&DEFAULT_TEXT.replacen(header, &format!("{header}action = \"deny\"\n"), 1)).unwrap();
    assert!(p.may_refuse_contexts());
    assert!(
        p.credential_facts(Kind::Aws, "/home/a/.aws/credentials")
            .deny_context
    );
    let off = DEFAULT_TEXT.replacen(
        header,
        &format!("{header}action = \"deny\"\nenabled = false\n"),
        1,
    );
    assert!(!parse(&off).unwrap().may_refuse_contexts());

    let e = parse("[proof]\ntls = true\n").unwrap_err();
    assert!(
        e.starts_with("/etc/keytrail.toml:2:") && e.contains("field `tls`"),
        "{e}"
    );
    assert_eq!(
        parse("[proof]\ntls = \"holders\"\n").unwrap().proof.tls,
        TlsProof::Holders
    );
    assert_eq!(Policy::embedded().proof.tls, TlsProof::All);

    let e = parse("[findings]\nfold_window = \"soon\"\n").unwrap_err();
    assert!(e.contains("field `fold_window`"), "{e}");
}

#[test]
fn rules_can_be_switched_off_or_rated() {
    let p = parse(
        "[rules.identity-mesh]\nenabled = false\n[rules.unexpected-reader]\nseverity = \"critical\"\n",
    )
    .unwrap();
    assert_eq!(p.severity(RuleId::IdentityMesh), None);
    assert_eq!(
        p.severity(RuleId::UnexpectedReader),
        Some(Severity::Critical)
    );
    assert_eq!(p.severity(RuleId::OutOfScopeUse), Some(Severity::High));
}
