//! The kernels of the matrix, pinned: xtask/vm/kernels.lock names, for each series, the exact
//! Debian package and version and the SHA-256 of its .deb and of the vmlinuz taken from it. The
//! matrix boots what the lock says, so it does not move when Debian publishes a new kernel;
//! `cargo xtask vm-test --refresh` looks up the newest of each series and rewrites the lock.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::build;

/// One pinned kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub series: String,
    /// Debian's release name, e.g. 6.12.117+deb12-amd64.
    pub release: String,
    /// The package that holds the vmlinuz (linux-image-*, or linux-binary-* from 6.19).
    pub package: String,
    pub version: String,
    pub deb_sha256: String,
    pub vmlinuz_sha256: String,
}

pub fn path() -> PathBuf {
    build::workspace_root().join("xtask/vm/kernels.lock")
}

/// The pins in the lock file; none when there is no lock yet.
pub fn read(path: &Path) -> anyhow::Result<Vec<Pin>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let field = |k: &Value, name: &str| -> anyhow::Result<String> {
        k[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{}: a kernel without `{name}`", path.display()))
    };
    value["kernels"]
        .as_array()
        .with_context(|| format!("{}: no `kernels` list", path.display()))?
        .iter()
        .map(|k| {
            Ok(Pin {
                series: field(k, "series")?,
                release: field(k, "release")?,
                package: field(k, "package")?,
                version: field(k, "version")?,
                deb_sha256: field(k, "deb_sha256")?,
                vmlinuz_sha256: field(k, "vmlinuz_sha256")?,
            })
        })
        .collect()
}

pub fn write(path: &Path, pins: &[Pin]) -> anyhow::Result<()> {
    let kernels: Vec<Value> = pins
        .iter()
        .map(|p| {
            json!({"series": p.series, "release": p.release, "package": p.package,
                "version": p.version, "deb_sha256": p.deb_sha256,
                "vmlinuz_sha256": p.vmlinuz_sha256})
        })
        .collect();
    let lock = json!({
        "about": "The kernels `cargo xtask vm-test` boots. Rewritten by `cargo xtask vm-test --refresh`.",
        "kernels": kernels,
    });
    fs::write(path, serde_json::to_string_pretty(&lock)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// SHA-256 of a file, hex (coreutils' sha256sum, on every Debian).
pub fn sha256(file: &Path) -> anyhow::Result<String> {
    let out = Command::new("sha256sum")
        .arg(file)
        .output()
        .context("running sha256sum")?;
    if !out.status.success() {
        bail!("sha256sum {} failed", file.display());
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .with_context(|| format!("sha256sum {}: no digest", file.display()))
}

/// Where downloaded kernels are kept: outside target/, so `cargo clean` keeps them and the
/// matrix runs offline once every pinned kernel is there. `$XDG_CACHE_HOME/keytrail/kernels`,
/// else `~/.cache/keytrail/kernels`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("keytrail/kernels")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_reads_back_what_was_written_and_names_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("keytrail-lock-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kernels.lock");
        assert_eq!(read(&path).unwrap(), Vec::new(), "no lock yet: no pins");
        let pin = Pin {
            series: "6.12".into(),
            release: "6.12.117+deb12-amd64".into(),
            package: "linux-image-6.12.117+deb12-amd64".into(),
            version: "6.12.117-1".into(),
            deb_sha256: "ab".repeat(32),
            vmlinuz_sha256: "cd".repeat(32),
        };
        write(&path, std::slice::from_ref(&pin)).unwrap();
        assert_eq!(read(&path).unwrap(), vec![pin]);
        fs::write(&path, r#"{"kernels": [{"series": "6.1"}]}"#).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("release"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
