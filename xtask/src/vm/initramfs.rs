//! The test VM's initramfs: busybox (static), keytrail with the shared libraries `ldd` names,
//! and /init (xtask/vm/init.sh). One image serves every kernel: nothing in it is per-kernel.
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

const INIT: &str = include_str!("../../vm/init.sh");
const BUSYBOX: &str = "/bin/busybox";

/// Builds `dir/initramfs.cpio.gz` around `keytrail` and returns its path.
pub fn build(keytrail: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join("initramfs");
    let _ = fs::remove_dir_all(&root);
    for sub in ["bin", "etc", "root", "proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(root.join(sub))?;
    }
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: run ./xtask/setup.sh (it installs busybox-static)");
    }
    copy(Path::new(BUSYBOX), &root.join("bin/busybox"))?;
    copy(keytrail, &root.join("bin/keytrail"))?;
    for library in shared_libraries(keytrail)? {
        let inside = root.join(library.strip_prefix("/").unwrap_or(&library));
        fs::create_dir_all(inside.parent().unwrap())?;
        copy(&library, &inside)?;
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
