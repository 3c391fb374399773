//! MCP server configurations: the tools an agent starts and the secrets it hands each one.
//! Formats (one per client, the same per-server fields):
//! - Claude Code: `mcpServers` at the top of ~/.claude.json and under each of its `projects`,
//!   and in a project's .mcp.json (code.claude.com/docs/en/mcp);
//! - Cursor: `mcpServers` in ~/.cursor/mcp.json (cursor.com/docs/mcp);
//! - Gemini CLI: `mcpServers` in ~/.gemini/settings.json (gemini-cli packages/core/src/config/
//!   config.ts, `MCPServerConfig`);
//! - Claude Desktop: `mcpServers` in claude_desktop_config.json;
//! - VS Code: `servers` in mcp.json (code.visualstudio.com/docs/copilot/reference/
//!   mcp-configuration); secrets it prompts for (`inputs`) are not in the file;
//! - Codex CLI: `[mcp_servers.NAME]` in $CODEX_HOME/config.toml, with `http_headers`
//!   (openai/codex codex-rs/core/src/config/types.rs).
//!
//! Per server: `command` and `args` (a local server keytrail will see started), `url` (a remote
//! one), `env` and `headers` (where its secrets are). A value that refers to another
//! (`${GITHUB_TOKEN}`, `${env:X}`, `${input:x}`) holds no secret of its own.
use serde_json::{Map, Value};

use super::Contents;

/// One server of an MCP configuration. Deliberately not `Debug`: it holds secret values.
#[derive(Clone, Default, PartialEq)]
pub struct ToolServer {
    pub name: String,
    /// The command line that starts it, for a local server.
    pub command: Vec<String>,
    /// The host of its URL, for a remote server.
    pub host: Option<String>,
    /// The secrets the configuration gives it (its `env` and `headers`).
    pub secrets: Vec<String>,
}

/// A tool server's name and command line, for telling its processes, and the user whose
/// configuration names it. Its arguments may hold secrets (`--api-key ...`): not `Debug`-printed.
#[derive(Clone, PartialEq)]
pub struct ToolCommand {
    pub name: String,
    /// The program, then its arguments.
    pub command: Vec<String>,
    pub owner: u32,
}

impl std::fmt::Debug for ToolCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolCommand")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl ToolServer {
    /// Its command line, for a configuration owned by `owner`.
    pub fn command(&self, owner: u32) -> Option<ToolCommand> {
        (!self.command.is_empty()).then(|| ToolCommand {
            name: self.name.clone(),
            command: self.command.clone(),
            owner,
        })
    }
}

impl ToolCommand {
    /// Whether a process that exec'd with `argv` runs this server: its command line is the
    /// server's, whole (the program by its name, as `npx` or `/usr/bin/npx`); or an
    /// interpreter's running the server's script (`npx` is a node script: the kernel runs it
    /// as `/usr/bin/env node /usr/bin/npx -y ...`, then env as `node /usr/bin/npx -y ...`).
    /// The server's line must come first or second, or third after `env`: a program that only
    /// carries it among its arguments (`python3 x.py /usr/bin/npx -y ...`) is not the server.
    pub fn matches(&self, argv: &[String]) -> bool {
        let Some((program, args)) = self.command.split_first() else {
            return false;
        };
        let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
        let program = base(program);
        let whole = |line: &[String]| {
            line.split_first()
                .is_some_and(|(first, rest)| base(first) == program && rest == args)
        };
        let after_env = argv.first().is_some_and(|first| base(first) == "env");
        whole(argv)
            || argv.get(1..).is_some_and(whole)
            || (after_env && argv.get(2..).is_some_and(whole))
    }
}

/// Servers one file may define, and the longest name kept: bounded, the file is its user's.
pub const MAX_SERVERS: usize = 64;
const MAX_NAME: usize = 64;

pub fn mcp(text: &str, c: &mut Contents) {
    let value = match serde_json::from_str::<Value>(text) {
        Ok(value) => value,
        Err(_) => match toml::from_str::<toml::Value>(text) {
            Ok(value) => serde_json::to_value(value).unwrap_or_default(),
            Err(_) => return,
        },
    };
    let mut tables: Vec<&Map<String, Value>> = Vec::new();
    for key in ["mcpServers", "servers", "mcp_servers"] {
        tables.extend(value.get(key).and_then(Value::as_object));
    }
    // Claude Code's per-project servers.
    if let Some(projects) = value.get("projects").and_then(Value::as_object) {
        tables.extend(
            projects
                .values()
                .filter_map(|p| p.get("mcpServers").and_then(Value::as_object)),
        );
    }
    // Claude Code may keep an API key beside its servers.
    if let Some(key) = value.get("primaryApiKey").and_then(Value::as_str) {
        c.secret(key);
    }
    let servers: Vec<(&String, &Value)> = tables.into_iter().flatten().collect();
    c.tools_dropped = servers.len().saturating_sub(MAX_SERVERS);
    for (name, server) in servers.into_iter().take(MAX_SERVERS) {
        let tool = server_of(name, server);
        for secret in &tool.secrets {
            c.secret(secret);
        }
        c.hosts.extend(tool.host.clone());
        if !c.tools.contains(&tool) {
            c.tools.push(tool);
        }
    }
}

fn server_of(name: &str, server: &Value) -> ToolServer {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let mut command: Vec<String> = server.get("command").and_then(text).into_iter().collect();
    command.extend(
        server
            .get("args")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(text),
    );
    let host = ["url", "httpUrl", "serverUrl"]
        .iter()
        .find_map(|k| server.get(*k).and_then(Value::as_str))
        .and_then(super::host_of);
    let mut secrets = Vec::new();
    for (table, secret_name) in [
        ("env", secret_named as fn(&str) -> bool),
        ("headers", header_secret as fn(&str) -> bool),
        ("http_headers", header_secret as fn(&str) -> bool),
    ] {
        for (key, value) in server
            .get(table)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            // Too short to be a secret (an empty value would match every empty variable),
            // or a reference to one held elsewhere.
            let Some(value) = value
                .as_str()
                .filter(|v| v.trim().len() >= 6 && !v.contains("${"))
            else {
                continue;
            };
            if secret_named(key) || secret_name(key) || crate::catalog::shape::of(value).is_some() {
                let value = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .unwrap_or(value)
                    .trim();
                if value.len() >= 6 {
                    secrets.push(value.to_owned());
                }
            }
        }
    }
    ToolServer {
        name: name.chars().take(MAX_NAME).collect(),
        command,
        host,
        secrets,
    }
}

/// A variable named like a secret's: `GITHUB_PERSONAL_ACCESS_TOKEN`, `SLACK_BOT_TOKEN`,
/// `API_KEY`, `DB_PASSWORD`.
fn secret_named(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    [
        "TOKEN",
        "KEY",
        "SECRET",
        "PASSWORD",
        "PASS",
        "PAT",
        "AUTH",
        "CREDENTIAL",
    ]
    .iter()
    .any(|part| name.split(['_', '-']).any(|word| word == *part) || name.ends_with(part))
}

/// A header that carries a secret: `Authorization`, `X-Api-Key`, `*-Token`.
fn header_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization" || name.contains("key") || name.contains("token")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claude Code's ~/.claude.json, as it writes servers added with `claude mcp add`: a local
    /// server with its token in `env`, a remote one with a header, a project's own server, and
    /// a server whose token comes from the environment (nothing in the file).
    const CLAUDE_JSON: &str = r#"{
      "numStartups": 3,
      "mcpServers": {
        "github": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                   "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_toolTokenAAAAAAAAAAAA", "LOG_LEVEL": "debug"}},
        "linear": {"type": "http", "url": "https://mcp.linear.app/mcp", "headers": {"Authorization": "Bearer lin_api_BBBBBBBBBBBB"}},
        "fromenv": {"command": "tool", "env": {"API_TOKEN": "${API_TOKEN}"}}
      },
      "projects": {"/home/a/app": {"mcpServers": {"db": {"command": "python3", "args": ["db_server.py"], "env": {"DB_PASSWORD": "db-pass-CCCC"}}}}}
    }"#;

    #[test]
    fn servers_their_commands_hosts_and_secrets() {
        let mut c = Contents::default();
        mcp(CLAUDE_JSON, &mut c);
        let names: Vec<&str> = c.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["fromenv", "github", "linear", "db"]);
        let github = &c.tools[1];
        assert_eq!(
            github.command,
            ["npx", "-y", "@modelcontextprotocol/server-github"]
        );
        assert_eq!(
            github.secrets,
            ["ghp_toolTokenAAAAAAAAAAAA"],
            "LOG_LEVEL is no secret"
        );
        assert_eq!(c.tools[2].host.as_deref(), Some("mcp.linear.app"));
        assert_eq!(c.tools[2].secrets, ["lin_api_BBBBBBBBBBBB"]);
        assert!(c.tools[0].secrets.is_empty(), "a reference holds no secret");
        assert_eq!(c.tools[3].secrets, ["db-pass-CCCC"]);
        assert_eq!(c.hosts, ["mcp.linear.app"]);
        assert_eq!(c.secrets.len(), 3);
    }

    #[test]
    fn codex_toml_and_vs_code_servers_are_read_too() {
        let mut c = Contents::default();
        mcp(
            "model = \"o3\"\n[mcp_servers.search]\ncommand = \"search-mcp\"\nenv = { SEARCH_API_KEY = \"search-key-DDDD\" }\n",
            &mut c,
        );
        assert_eq!(c.tools.len(), 1);
        assert_eq!(c.tools[0].secrets, ["search-key-DDDD"]);
        let mut c = Contents::default();
        mcp(
            r#"{"inputs":[{"type":"promptString","id":"k","password":true}],"servers":{"fs":{"command":"node","args":["fs.js"],"env":{"KEY":"${input:k}"}}}}"#,
            &mut c,
        );
        assert_eq!(c.tools[0].name, "fs");
        assert!(c.secrets.is_empty());
    }

    #[test]
    fn a_server_is_told_by_its_program_and_arguments() {
        let tool = ToolCommand {
            name: "github".into(),
            command: vec![
                "npx".into(),
                "-y".into(),
                "@modelcontextprotocol/server-github".into(),
            ],
            owner: 1000,
        };
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let server = "@modelcontextprotocol/server-github";
        // npx is a node script: the kernel runs env with it, then env runs node with it.
        assert!(tool.matches(&argv(&[
            "/usr/bin/env",
            "node",
            "/usr/bin/npx",
            "-y",
            server
        ])));
        assert!(tool.matches(&argv(&["node", "/usr/bin/npx", "-y", server])));
        assert!(tool.matches(&argv(&["npx", "-y", server])));
        assert!(!tool.matches(&argv(&[
            "node",
            "/usr/bin/npx",
            "-y",
            "@modelcontextprotocol/server-slack"
        ])));
        assert!(
            !tool.matches(&argv(&["python3", "evil.py", "/x/npx", "-y", server])),
            "the line among another program's arguments"
        );
        assert!(
            !tool.matches(&argv(&["npx", "-y", server, "--extra"])),
            "more arguments"
        );
        let python = ToolCommand {
            name: "db".into(),
            command: vec!["python3".into(), "db_server.py".into()],
            owner: 1000,
        };
        assert!(python.matches(&argv(&["python3", "db_server.py"])));
        assert!(!python.matches(&argv(&["python3", "other.py"])));
        assert_eq!(
            format!("{python:?}"),
            "ToolCommand { name: \"db\", owner: 1000, .. }"
        );
    }
}
