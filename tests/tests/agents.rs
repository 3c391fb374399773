//! The credentials agents hold: an agent named as the real ones are (a copy of python named
//! `claude`), its MCP configuration (~/.claude.json, as Claude Code writes servers) giving a
//! tool server a GitHub token, the tool server it starts from that configuration, and an AWS
//! key in ~/.aws/credentials. Names come from a real dnsmasq in a network namespace of the
//! test's own. Needs root: `cargo xtask test`.
use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf};

use keytrail_tests::*;
use serde_json::Value;

const TOOL_TOKEN: &str = "ghp_ktAgentToolToken0123456789abc";
/// Where `./xtask/setup.sh` installs Claude Code for these tests.
const CLAUDE_CODE: &str = "/opt/keytrail-test-tools/node_modules/.bin/claude";
const AWS_SECRET: &str = "kt-agents-aws-secret-0f3a9c";

/// A copy of python named `claude`, where the test user can run it: the default policy's
/// coding-agent rule matches it by name.
fn agent_binary(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kt-{tag}-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let claude = dir.join("claude");
    fs::copy("/usr/bin/python3", &claude).unwrap();
    fs::set_permissions(&claude, fs::Permissions::from_mode(0o755)).unwrap();
    claude
}

/// The MCP server: connects to api.github.com with the token it was started with.
const TOOL_SERVER: &str = r#"
import os, socket
assert os.environ['GITHUB_PERSONAL_ACCESS_TOKEN']
try:
    socket.create_connection(('api.github.com', 443), timeout=3).close()
except OSError:
    pass
"#;

/// The agent: reads its configuration, starts its tool server as the configuration says, then
/// acts with the tool's token itself, and with the AWS key.
const AGENT: &str = r#"
import json, os, socket, subprocess, sys
config = json.load(open(os.path.expanduser('~/.claude.json')))
server = config['mcpServers']['github']
env = dict(os.environ, **server['env'])
subprocess.run([server['command']] + server['args'], env=env, check=True)
open(os.path.expanduser('~/.aws/credentials')).read()
for host in ['api.github.com', 'sts.amazonaws.com']:
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        pass
"#;

#[test]
fn an_agent_acting_with_its_tools_token_and_a_standing_key_is_reported() {
    require_root();
    let user = TestUser::create("agent");
    let claude = agent_binary("agent");
    let tool = claude.with_file_name("github_server.py");
    fs::write(&tool, TOOL_SERVER).unwrap();
    user.write(
        ".aws/credentials",
        &format!(
            "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = {AWS_SECRET}\n"
        ),
    );
    let ns = Netns::create(
        "agent",
        &["10.77.0.1/24", "10.77.0.10/24", "10.77.0.20/24"],
        "10.77.0.1",
    );
    let mut k = Keytrail::start(&[]);
    // The configuration comes while keytrail runs, as `claude mcp add` would write it: read
    // again when it appears, its tools known without a restart.
    let config = serde_json::json!({
        "numStartups": 1,
        "mcpServers": {"github": {
            "type": "stdio",
            "command": "python3",
            "args": [tool.display().to_string()],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": TOOL_TOKEN}
        }}
    });
    user.write(".claude.json", &config.to_string());
    let _dnsmasq = ns.dnsmasq(&[
        "--address=/api.github.com/10.77.0.10",
        "--address=/sts.amazonaws.com/10.77.0.20",
    ]);
    ns.wait_until_resolves("api.github.com");
    let agent = run_pid(ns.command_as(&user, &path_str(&claude)).args(["-c", AGENT]));

    // The tool server is in its tool's context, holding its tool's credential.
    let started = k.wait_for("the tool server started with its token", WAIT, |r| {
        r["type"] == "credential_access"
            && r["hook"] == "environment"
            && r["process"]["agent"]["pid"] == agent
            && r["process"]["pid"] != agent
    });
    assert_eq!(started["process"]["context"], "tool:github", "{started}");
    assert_eq!(started["credential"]["context"], "tool:github", "{started}");
    assert_eq!(started["credential"]["lifetime"], "long", "{started}");
    let tool_pid = started["process"]["pid"].clone();
    k.wait_for("the tool's own use", WAIT, |r| {
        r["type"] == "credential_use"
            && r["process"]["pid"] == tool_pid
            && r["endpoint"]["host"] == "api.github.com"
    });

    // The agent acting with the tool's token: the use names the tool's credential.
    let reuse = k.wait_for("cross-context-reuse of the tool's token", WAIT, |r| {
        r["type"] == "finding"
            && r["rule"] == "cross-context-reuse"
            && r["process"]["pid"] == agent
            && r["endpoint"]["host"] == "api.github.com"
    });
    assert_eq!(reuse["credential"]["context"], "tool:github", "{reuse}");
    assert_eq!(reuse["credential"]["kind"], "github", "{reuse}");
    let standing = k.wait_for("standing-credential for the AWS key", WAIT, |r| {
        r["type"] == "finding"
            && r["rule"] == "standing-credential"
            && r["process"]["pid"] == agent
            && r["credential"]["kind"] == "aws"
    });
    assert_eq!(standing["severity"], "medium");
    assert_eq!(standing["credential"]["lifetime"], "long");
    let (records, stderr) = k.stop();
    assert!(
        !records.iter().any(|r| r["type"] == "finding"
            && r["rule"] == "cross-context-reuse"
            && r["process"]["pid"] == tool_pid),
        "the tool using its own token is no reuse"
    );
    assert_no_secret(&records, &stderr, &[TOOL_TOKEN, AWS_SECRET]);
    let _ = fs::remove_dir_all(claude.parent().unwrap());
}

/// Files as the agents' and developers' own tools write them: Claude Code's `claude mcp add`
/// (a local server with its token in `env`, a remote one with a header) and `cargo login`. The
/// catalog lists the configuration with a credential per tool server, each in its tool's
/// context and scoped to its kind's hosts or its URL's, and cargo's token with its kind.
#[test]
fn files_written_by_claude_code_and_cargo_are_understood() {
    require_root();
    assert!(
        std::path::Path::new(CLAUDE_CODE).is_file(),
        "{CLAUDE_CODE} is missing: ./xtask/setup.sh installs Claude Code for this test"
    );
    let user = TestUser::create("agentcli");
    let claude = |args: &[&str]| {
        run(user
            .command(CLAUDE_CODE)
            .env("DISABLE_TELEMETRY", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .args(["mcp", "add", "--scope", "user"])
            .args(args));
    };
    claude(&[
        "github",
        "-e",
        &format!("GITHUB_PERSONAL_ACCESS_TOKEN={TOOL_TOKEN}"),
        "--",
        "npx",
        "-y",
        "@modelcontextprotocol/server-github",
    ]);
    claude(&[
        "--transport",
        "http",
        "linear",
        "https://mcp.linear.app/mcp",
        "--header",
        "Authorization: Bearer lin_api_ktAgentLinear0123",
    ]);
    // cargo, as root for this user's CARGO_HOME (the toolchain is root's), then given to them.
    let cargo_home = user.home.join(".cargo");
    let mut login = std::process::Command::new("cargo");
    login
        .args(["login"])
        .env("CARGO_HOME", &cargo_home)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"cio_ktAgentCargoToken0123\n",
    )
    .unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "cargo login");
    run(std::process::Command::new("chown")
        .args(["-R", &format!("{0}:{0}", user.name)])
        .arg(&cargo_home));

    let catalog = catalog_json();
    let listed = |path: &str| {
        catalog
            .iter()
            .find(|c| c["path"] == path)
            .unwrap_or_else(|| panic!("{path} not in the catalog: {catalog:?}"))
    };
    let mcp = listed(&path_str(&user.home.join(".claude.json")));
    assert_eq!(mcp["kind"], "mcp");
    assert_eq!(mcp["secrets"], 2, "{mcp}");
    let tools = mcp["tools"].as_array().unwrap();
    let github = tools
        .iter()
        .find(|t| t["context"] == "tool:github")
        .unwrap();
    assert_eq!(github["kind"], "github");
    assert_eq!(github["lifetime"], "long");
    assert!(
        github["scope"]["hosts"]
            .as_array()
            .unwrap()
            .contains(&"api.github.com".into())
            || github["scope"]["hosts"]
                .as_array()
                .unwrap()
                .contains(&"*.github.com".into()),
        "{github}"
    );
    let linear = tools
        .iter()
        .find(|t| t["context"] == "tool:linear")
        .unwrap();
    assert!(
        linear["scope"]["hosts"]
            .as_array()
            .unwrap()
            .contains(&"mcp.linear.app".into()),
        "{linear}"
    );
    let cargo = listed(&path_str(&cargo_home.join("credentials.toml")));
    assert_eq!(cargo["kind"], "cargo");
    assert_eq!(cargo["secrets"], 1, "{cargo}");
}

/// A project's secret files are watched while an agent works in it: the agent starts in the
/// project, and its reads of the project's `.env` and of a key one directory down are
/// credential accesses; once it exits, the project is no longer watched.
#[test]
fn an_agents_workspace_secrets_are_watched_while_it_works_there() {
    require_root();
    let user = TestUser::create("workspace");
    let claude = agent_binary("workspace");
    let project = user.home.join("project");
    let dotenv = user.write(
        "project/.env",
        "DATABASE_URL=postgres://app:kt-ws-secret-77@db/app\n",
    );
    let key = user.write("project/config/deploy.pem", "kt-ws-key-bytes-0a1b2c\n");
    let mut k = Keytrail::start(&[]);
    // The agent waits a moment: keytrail watches the workspace once it has seen the agent
    // start (a read in the first milliseconds would come before the watch).
    let script =
        "import time; time.sleep(1.5); open('.env').read(); open('config/deploy.pem').read()";
    let agent = run_pid(
        user.command(&path_str(&claude))
            .args(["-c", script])
            .current_dir(&project),
    );
    for file in [&dotenv, &key] {
        k.wait_for(
            &format!("the agent's read of {}", file.display()),
            WAIT,
            |r| {
                r["type"] == "credential_access"
                    && r["process"]["pid"] == agent
                    && r["credential"]["path"] == path_str(file)
            },
        );
    }
    k.settle(std::time::Duration::from_millis(500));
    let (records, stderr) = k.stop();
    let kinds: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "credential_access" && r["process"]["pid"] == agent)
        .map(|r| &r["credential"]["kind"])
        .collect();
    assert!(kinds.contains(&&Value::from("dotenv")), "{kinds:?}");
    assert!(
        stderr.contains(&format!("an agent works in {project:?}"))
            && stderr.contains(&format!("no agent works in {project:?} any more")),
        "{stderr}"
    );
    assert_no_secret(
        &records,
        &stderr,
        &["kt-ws-secret-77", "kt-ws-key-bytes-0a1b2c"],
    );
    let _ = fs::remove_dir_all(claude.parent().unwrap());
}
