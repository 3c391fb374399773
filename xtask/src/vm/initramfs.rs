//! The test VM's initramfs: busybox and kt-vm-helper (static), keytrail, curl, dnsmasq and
//! openssl (a TLS server for proof of use, with a throwaway certificate) with the shared
//! libraries `ldd` names, the credentials, the list of passes, and /init
//! (xtask/vm/init.sh). One image serves every kernel: nothing in it is per-kernel.
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::build;

const INIT: &str = include_str!("../../vm/init.sh");
const BUSYBOX: &str = "/bin/busybox";

/// What goes into the image besides the fixed parts.
pub struct Contents<'a> {
    pub keytrail: &'a Path,
    /// kt-vm-helper, statically linked.
    pub helper: &'a Path,
    /// The secret both credentials hold.
    pub token: &'a str,
    /// One `--skip-hooks` value per pass ("default": none).
    pub passes: &'a [&'a str],
}

/// Builds `dir/initramfs.cpio.gz` and returns its path.
pub fn build(contents: &Contents, dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join("initramfs");
    let _ = fs::remove_dir_all(&root);
    for sub in ["bin", "etc", "root", "proc", "sys", "dev", "tmp", "kt"] {
        fs::create_dir_all(root.join(sub))?;
    }
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: run ./xtask/setup.sh (it installs busybox-static)");
    }
    copy(Path::new(BUSYBOX), &root.join("bin/busybox"))?;
    copy(contents.helper, &root.join("bin/kt-vm-helper"))?;
    copy_with_libraries(contents.keytrail, &root, "keytrail")?;
    for tool in ["curl", "dnsmasq", "openssl"] {
        // dnsmasq is in /usr/sbin, which a user's PATH may lack.
        let sbin = || {
            ["/usr/sbin", "/sbin"]
                .iter()
                .map(|dir| Path::new(dir).join(tool))
                .find(|p| p.is_file())
        };
        let Some(path) = build::which(tool).or_else(sbin) else {
            bail!(
                "{tool} is missing: run ./xtask/setup.sh (it installs curl, dnsmasq-base and openssl)"
            );
        };
        copy_with_libraries(&path, &root, tool)?;
    }
    fs::write(
        root.join("root/.netrc"),
        format!("machine 127.0.0.1 login bot password {}\n", contents.token),
    )?;
    fs::write(
        root.join("kt/aws-credentials"),
        format!(
            "[default]\naws_access_key_id = AKIAKTVMTEST00000000\naws_secret_access_key = {}\n",
            contents.token
        ),
    )?;
    fs::write(root.join("kt/passes"), contents.passes.join("\n") + "\n")?;
    // The guest's TLS server's certificate (curl is told not to verify it).
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(root.join("kt/tls.key"))
        .arg("-out")
        .arg(root.join("kt/tls.pem"))
        .output()?;
    if !out.status.success() {
        bail!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::write(root.join("init"), INIT)?;
    fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o755))?;
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;

    let image = dir.join("initramfs.cpio.gz");
    let script = format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'",
        root.display(),
        image.display()
    );
    let status = Command::new("sh").args(["-c", &script]).status()?;
    if !status.success() {
        bail!("packing the initramfs failed (is cpio installed? ./xtask/setup.sh installs it)");
    }
    Ok(image)
}

/// `binary` as /bin/`name`, and the shared libraries it needs at their own paths.
fn copy_with_libraries(binary: &Path, root: &Path, name: &str) -> anyhow::Result<()> {
    copy(binary, &root.join("bin").join(name))?;
    for library in shared_libraries(binary)? {
        let inside = root.join(library.strip_prefix("/").unwrap_or(&library));
        fs::create_dir_all(inside.parent().unwrap())?;
        copy(&library, &inside)?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::copy(from, to).with_context(|| format!("copying {from:?} into the initramfs"))?;
    Ok(())
}

/// The absolute paths `ldd` prints for `binary` (the loader included).
fn shared_libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .stderr(Stdio::inherit())
        .output()
        .context("running ldd")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}
