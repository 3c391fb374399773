//! Credential kinds, as named in the product contract.
use std::{fmt, str::FromStr};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Aws,
    Gcp,
    Azure,
    Kube,
    Docker,
    Github,
    Git,
    Netrc,
    Npm,
    Pypi,
    Ssh,
    Vault,
    Dotenv,
    // The agents' own: Claude Code, Codex CLI, Gemini CLI, GitHub Copilot, aider; and the MCP
    // configurations that hold the tokens agents hand their tools.
    Anthropic,
    Openai,
    Gemini,
    Copilot,
    Aider,
    Mcp,
    // More developer tools.
    Cargo,
    Rubygems,
    Maven,
    Gradle,
    Helm,
    Terraform,
    Postgres,
    Mysql,
    Huggingface,
    Oci,
    Digitalocean,
    Databricks,
    Generic,
}

pub const ALL: &[Kind] = &[
    Kind::Aws,
    Kind::Gcp,
    Kind::Azure,
    Kind::Kube,
    Kind::Docker,
    Kind::Github,
    Kind::Git,
    Kind::Netrc,
    Kind::Npm,
    Kind::Pypi,
    Kind::Ssh,
    Kind::Vault,
    Kind::Dotenv,
    Kind::Anthropic,
    Kind::Openai,
    Kind::Gemini,
    Kind::Copilot,
    Kind::Aider,
    Kind::Mcp,
    Kind::Cargo,
    Kind::Rubygems,
    Kind::Maven,
    Kind::Gradle,
    Kind::Helm,
    Kind::Terraform,
    Kind::Postgres,
    Kind::Mysql,
    Kind::Huggingface,
    Kind::Oci,
    Kind::Digitalocean,
    Kind::Databricks,
    Kind::Generic,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Aws => "aws",
            Kind::Gcp => "gcp",
            Kind::Azure => "azure",
            Kind::Kube => "kube",
            Kind::Docker => "docker",
            Kind::Github => "github",
            Kind::Git => "git",
            Kind::Netrc => "netrc",
            Kind::Npm => "npm",
            Kind::Pypi => "pypi",
            Kind::Ssh => "ssh",
            Kind::Vault => "vault",
            Kind::Dotenv => "dotenv",
            Kind::Anthropic => "anthropic",
            Kind::Openai => "openai",
            Kind::Gemini => "gemini",
            Kind::Copilot => "copilot",
            Kind::Aider => "aider",
            Kind::Mcp => "mcp",
            Kind::Cargo => "cargo",
            Kind::Rubygems => "rubygems",
            Kind::Maven => "maven",
            Kind::Gradle => "gradle",
            Kind::Helm => "helm",
            Kind::Terraform => "terraform",
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Huggingface => "huggingface",
            Kind::Oci => "oci",
            Kind::Digitalocean => "digitalocean",
            Kind::Databricks => "databricks",
            Kind::Generic => "generic",
        }
    }

    /// The kind a file's name suggests, for `--watch PATH` without `=KIND`.
    pub fn guess(path: &str) -> Kind {
        let name = path.rsplit('/').next().unwrap_or(path);
        match name {
            ".netrc" => Kind::Netrc,
            ".git-credentials" => Kind::Git,
            ".npmrc" => Kind::Npm,
            ".pypirc" => Kind::Pypi,
            ".vault-token" => Kind::Vault,
            ".pgpass" => Kind::Postgres,
            ".my.cnf" => Kind::Mysql,
            ".databrickscfg" => Kind::Databricks,
            ".mcp.json" | "mcp.json" => Kind::Mcp,
            "credentials.tfrc.json" => Kind::Terraform,
            "settings.xml" if path.contains("/.m2/") => Kind::Maven,
            n if n.starts_with("id_") && !n.ends_with(".pub") => Kind::Ssh,
            n if n == ".env" || n.starts_with(".env.") => Kind::Dotenv,
            _ if path.contains("/.aws/") => Kind::Aws,
            _ if path.contains("/.kube/") => Kind::Kube,
            _ if path.contains("/.claude/") => Kind::Anthropic,
            _ if path.contains("/.codex/") => Kind::Openai,
            _ if path.contains("/.cargo/") => Kind::Cargo,
            _ => Kind::Generic,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = ALL.iter().map(|k| k.name()).collect();
            format!(
                "unknown credential kind '{s}' (kinds: {})",
                names.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_kinds_list_the_choices() {
        for kind in ALL {
            assert_eq!(kind.name().parse::<Kind>().unwrap(), *kind);
        }
        let err = "awz".parse::<Kind>().unwrap_err();
        assert!(err.contains("awz") && err.contains("netrc"), "{err}");
    }

    #[test]
    fn guesses_kinds_from_file_names() {
        assert_eq!(Kind::guess("/home/a/.netrc"), Kind::Netrc);
        assert_eq!(Kind::guess("/home/a/.ssh/id_ed25519"), Kind::Ssh);
        assert_eq!(Kind::guess("/home/a/.ssh/id_ed25519.pub"), Kind::Generic);
        assert_eq!(Kind::guess("/srv/app/.env"), Kind::Dotenv);
        assert_eq!(Kind::guess("/srv/app/.mcp.json"), Kind::Mcp);
        assert_eq!(Kind::guess("/home/a/.pgpass"), Kind::Postgres);
    }
}
