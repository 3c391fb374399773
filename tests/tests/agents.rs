//! The credentials agents hold: an agent named as the real ones are (a copy of python named
//! `claude`), its MCP configuration (~/.claude.json, as Claude Code writes servers) giving a
//! tool server a GitHub token, the tool server it starts from that configuration, and an AWS
//! key in ~/.aws/credentials. Names come from a real dnsmasq in a network namespace of the
//! test's own. Needs root: `cargo xtask test`.
use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf};

use keytrail_tests::*;

const TOOL_TOKEN: &str = "ghp_ktAgentToolToken0123456789abc";
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
