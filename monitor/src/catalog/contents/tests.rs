//! The readers on files as their tools write them (see each reader's citation).
use super::*;

#[test]
fn files_name_their_hosts_and_secrets() {
    let c = inspect(
        Kind::Netrc,
        "machine api.example.com login bot password s3cr3t-netrc\n",
    );
    assert_eq!(c.hosts, ["api.example.com"]);
    assert_eq!(c.secrets, ["s3cr3t-netrc"]);

    let c = inspect(
        Kind::Git,
        "https://bot:ghp_abcdef123@github.com\nhttps://x:glpat-999999@gitlab.example.org:8443/\n",
    );
    assert_eq!(c.hosts, ["github.com", "gitlab.example.org"]);
    assert_eq!(c.secrets, ["ghp_abcdef123", "glpat-999999"]);

    let c = inspect(
        Kind::Kube,
        "clusters:\n- cluster:\n    server: https://10.0.0.5:6443\nusers:\n- name: a\n  user:\n    token: kube-token-1\n",
    );
    assert_eq!(c.hosts, ["10.0.0.5"]);
    assert_eq!(c.secrets, ["kube-token-1"]);

    let c = inspect(
        Kind::Docker,
        r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"ghcr.io":{"auth":"Z2hjcjp0b2tlbg=="}}}"#,
    );
    assert_eq!(c.hosts, ["ghcr.io", "index.docker.io"]);
    assert_eq!(c.secrets.len(), 2);

    let c = inspect(
        Kind::Npm,
        "registry=https://npm.example.com/\n//npm.example.com/:_authToken=npm_tok_123\n",
    );
    assert_eq!(c.hosts, ["npm.example.com"]);
    assert_eq!(c.secrets, ["npm_tok_123"]);

    let c = inspect(
        Kind::Pypi,
        "[pypi]\nusername = __token__\npassword = pypi-AgEIcHlwaS5vcmc\n[internal]\nrepository = https://pypi.internal.example/legacy/\n",
    );
    assert_eq!(c.hosts, ["pypi.internal.example"]);
    assert_eq!(c.secrets, ["pypi-AgEIcHlwaS5vcmc"]);

    let c = inspect(
        Kind::Aws,
        "[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG\n",
    );
    assert!(c.hosts.is_empty());
    assert_eq!(c.secrets, ["wJalrXUtnFEMI/K7MDENG"]);

    let c = inspect(
        Kind::Github,
        "github.com:\n    oauth_token: gho_abcdef\n    user: bot\n",
    );
    assert_eq!(c.hosts, ["github.com"]);
    assert_eq!(c.secrets, ["gho_abcdef"]);

    let c = inspect(Kind::Generic, "tok-1234567\n");
    assert_eq!(c.secrets, ["tok-1234567"]);
}

/// The agents' own files, as their tools write them (see the readers' citations).
#[test]
fn agents_files_name_their_secrets_and_lifetimes() {
    let claude = r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-aaaaaaaaaaaa","refreshToken":"sk-ant-ort01-bbbbbbbbbbbb","expiresAt":1764000000000,"scopes":["user:inference"]}}"#;
    let c = inspect(Kind::Anthropic, claude);
    assert_eq!(
        c.secrets,
        ["sk-ant-oat01-aaaaaaaaaaaa", "sk-ant-ort01-bbbbbbbbbbbb"]
    );
    assert_eq!(c.lifetime, Some(Lifetime::Long), "a refresh token lives");

    let codex = r#"{"OPENAI_API_KEY":null,"tokens":{"id_token":"eyJx.eyJ5.sig","access_token":"codex-access-123456","refresh_token":"codex-refresh-123456","account_id":"acct"},"last_refresh":"2026-11-30T00:00:00Z"}"#;
    let c = inspect(Kind::Openai, codex);
    assert_eq!(c.secrets.len(), 3);
    assert_eq!(c.lifetime, Some(Lifetime::Long));

    let c = inspect(
        Kind::Gemini,
        "GEMINI_API_KEY=AIzaSyExampleKey123\nOTHER=1\n",
    );
    assert_eq!(c.secrets, ["AIzaSyExampleKey123"]);

    let copilot = r#"{"github.com:Iv1.b507a08c87ecfe98":{"user":"bot","oauth_token":"ghu_copilotToken1234567","githubAppId":"Iv1.b507a08c87ecfe98"}}"#;
    let c = inspect(Kind::Copilot, copilot);
    assert_eq!(c.hosts, ["github.com"]);
    assert_eq!(c.secrets, ["ghu_copilotToken1234567"]);
    assert_eq!(c.lifetime, Some(Lifetime::Short), "ghu_ tokens expire");

    let c = inspect(
        Kind::Aider,
        "model: sonnet\nanthropic-api-key: sk-ant-api03-cccccccccccc\napi-key:\n- gemini=AIzaGeminiKey9999\n",
    );
    assert_eq!(
        c.secrets,
        ["sk-ant-api03-cccccccccccc", "AIzaGeminiKey9999"]
    );
}

#[test]
fn developer_tools_files_name_their_hosts_and_secrets() {
    let cases: &[(Kind, &str, &[&str], &[&str])] = &[
        (
            Kind::Cargo,
            "[registry]\ntoken = \"cio_crates_token_1\"\n[registries.corp]\ntoken = \"corp-token-22\"\n",
            &[],
            &["cio_crates_token_1", "corp-token-22"],
        ),
        (
            Kind::Rubygems,
            "---\n:rubygems_api_key: rubygems_abcdef0123\nhttps://gems.corp.example: corp-gem-key-1\n",
            &["gems.corp.example"],
            &["rubygems_abcdef0123", "corp-gem-key-1"],
        ),
        (
            Kind::Maven,
            "<settings><servers><server><id>corp</id><username>u</username><password>mvn-pass-123</password></server></servers></settings>",
            &[],
            &["mvn-pass-123"],
        ),
        (
            Kind::Gradle,
            "org.gradle.jvmargs=-Xmx2g\nmyRepoUsername=bot\nmyRepoPassword=gradle-pw-123\n",
            &[],
            &["gradle-pw-123"],
        ),
        (
            Kind::Helm,
            "repositories:\n- name: corp\n  url: https://charts.corp.example/\n  username: u\n  password: helm-pass-1\n",
            &["charts.corp.example"],
            &["helm-pass-1"],
        ),
        (
            Kind::Terraform,
            r#"{"credentials":{"app.terraform.io":{"token":"tf-token.atlasv1.abcdef"}}}"#,
            &["app.terraform.io"],
            &["tf-token.atlasv1.abcdef"],
        ),
        (
            Kind::Postgres,
            "db.corp.example:5432:app:app:pg\\:pass1\n*:*:*:ro:ro-password\n",
            &["db.corp.example"],
            &["pg:pass1", "ro-password"],
        ),
        (
            Kind::Mysql,
            "[client]\nuser = app\npassword = mysql-pw-9\nhost = mysql.corp.example\n",
            &["mysql.corp.example"],
            &["mysql-pw-9"],
        ),
        (
            Kind::Huggingface,
            "hf_abcdefghijklmnopqrstu\n",
            &[],
            &["hf_abcdefghijklmnopqrstu"],
        ),
        (
            Kind::Huggingface,
            "[default]\nhf_token = hf_storedtoken123456789\n",
            &[],
            &["hf_storedtoken123456789"],
        ),
        (
            Kind::Databricks,
            "[DEFAULT]\nhost = https://adb-1.azuredatabricks.net\ntoken = dapi0123456789\n",
            &["adb-1.azuredatabricks.net"],
            &["dapi0123456789"],
        ),
        (
            Kind::Oci,
            "[DEFAULT]\nuser=ocid1.user.oc1..a\nkey_file=~/.oci/key.pem\npass_phrase=oci-phrase-1\n",
            &[],
            &["oci-phrase-1"],
        ),
        (
            Kind::Digitalocean,
            "access-token: dop_v1_aaaaaaaaaaaaaaaa\nauth-contexts:\n  work: dop_v1_bbbbbbbbbbbbbbbb\ncontext: default\n",
            &[],
            &["dop_v1_aaaaaaaaaaaaaaaa", "dop_v1_bbbbbbbbbbbbbbbb"],
        ),
    ];
    for (kind, text, hosts, secrets) in cases {
        let c = inspect(*kind, text);
        assert_eq!(c.hosts, *hosts, "{kind}");
        assert_eq!(c.secrets, *secrets, "{kind}");
    }
    // An AWS file's key id says whether its key is long-term.
    let aws = |id: &str| {
        inspect(Kind::Aws, &format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG\n")).lifetime
    };
    assert_eq!(aws("AKIAIOSFODNN7EXAMPLE"), Some(Lifetime::Long));
    assert_eq!(aws("ASIAIOSFODNN7EXAMPLE"), Some(Lifetime::Short));
}

#[test]
fn git_credential_store_lines_are_percent_decoded() {
    // As `git credential-store store` wrote it for host 127.0.0.1:8443, password p@ss:w/rd%123.
    let c = inspect(
        Kind::Git,
        "http://kt:p%40ss%3aw%2frd%25123@127.0.0.1%3a8443\n",
    );
    assert_eq!(c.hosts, ["127.0.0.1"]);
    assert_eq!(c.secrets, ["p@ss:w/rd%123"]);
    assert_eq!(percent_decoded("100%"), "100%");
    assert_eq!(percent_decoded("%zz%4"), "%zz%4");
}

#[test]
fn host_of_takes_urls_apart() {
    assert_eq!(
        host_of("https://u:p@Example.COM:8443/x?y").unwrap(),
        "example.com"
    );
    assert_eq!(host_of("[::1]:443").unwrap(), "::1");
    assert_eq!(
        host_of("registry.npmjs.org/").unwrap(),
        "registry.npmjs.org"
    );
    assert_eq!(host_of("  "), None);
}
