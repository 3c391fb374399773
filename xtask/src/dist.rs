//! `cargo xtask dist`: keytrail as a Debian package (target/dist/keytrail_VERSION_amd64.deb):
//! the binary, the systemd unit, the default policy as a conffile at /etc/keytrail/policy.toml,
//! logrotate's rule for the records file, the man page and the shell completions. Built with
//! dpkg-deb from a staged tree; the man page, completions and policy come from the binary
//! itself, so they cannot drift from it.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::build;

/// Files of the package that come from xtask/dist, and where they go.
const STATIC_FILES: &[(&str, &str, u32)] = &[
    (
        "keytrail.service",
        "lib/systemd/system/keytrail.service",
        0o644,
    ),
    ("logrotate", "etc/logrotate.d/keytrail", 0o644),
];

/// Shells whose completions are packaged, and where each looks for them.
const COMPLETIONS: &[(&str, &str)] = &[
    ("bash", "usr/share/bash-completion/completions/keytrail"),
    ("zsh", "usr/share/zsh/vendor-completions/_keytrail"),
    ("fish", "usr/share/fish/vendor_completions.d/keytrail.fish"),
];

pub fn run() -> anyhow::Result<()> {
    let binary = build::keytrail()?;
    let deb = package(&binary)?;
    println!("{}", deb.display());
    Ok(())
}

/// Builds the package around `binary`; returns its path.
pub fn package(binary: &Path) -> anyhow::Result<PathBuf> {
    let root = build::workspace_root();
    let sources = root.join("xtask/dist");
    let version = env!("CARGO_PKG_VERSION");
    let out = root.join("target/dist");
    let stage = out.join(format!("keytrail_{version}_amd64"));
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    let put = |relative: &str, bytes: &[u8], mode: u32| -> anyhow::Result<()> {
        let path = stage.join(relative);
        fs::create_dir_all(path.parent().expect("a file in a directory"))?;
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    put("usr/bin/keytrail", &fs::read(binary)?, 0o755)?;
    for (source, target, mode) in STATIC_FILES {
        put(target, &fs::read(sources.join(source))?, *mode)?;
    }
    put(
        "etc/keytrail/policy.toml",
        &output(binary, &["policy", "--default"])?,
        0o644,
    )?;
    put(
        "usr/share/man/man1/keytrail.1.gz",
        &gzip(&output(binary, &["manpage"])?)?,
        0o644,
    )?;
    for (shell, target) in COMPLETIONS {
        put(target, &output(binary, &["completions", shell])?, 0o644)?;
    }
    let size_kib = directory_size(&stage)? / 1024 + 1;
    let control = fs::read_to_string(sources.join("debian/control"))?
        .replace("@VERSION@", version)
        .replace("@SIZE@", &size_kib.to_string());
    put("DEBIAN/control", control.as_bytes(), 0o644)?;
    put(
        "DEBIAN/conffiles",
        &fs::read(sources.join("debian/conffiles"))?,
        0o644,
    )?;
    for script in ["postinst", "prerm", "postrm"] {
        put(
            &format!("DEBIAN/{script}"),
            &fs::read(sources.join("debian").join(script))?,
            0o755,
        )?;
    }
    let deb = out.join(format!("keytrail_{version}_amd64.deb"));
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&deb)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running dpkg-deb (Debian's dpkg package)")?;
    if !status.success() {
        bail!("dpkg-deb failed to build {}", deb.display());
    }
    eprintln!("xtask: built {}", deb.display());
    Ok(deb)
}

/// What `binary ARGS` prints, or an error with its stderr.
fn output(binary: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new(binary)
        .args(args)
        .output()
        .with_context(|| format!("running keytrail {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "keytrail {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// `bytes` compressed as `gzip -9n` does (no name, no time: the package is reproducible).
fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-9n"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running gzip")?;
    child.stdin.take().expect("piped").write_all(bytes)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed");
    }
    Ok(out.stdout)
}

fn directory_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            directory_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
