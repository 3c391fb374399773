//! Debian kernels for the matrix, as xtask/vm/kernels.lock pins them (lock.rs): taken from the
//! cache when it holds them (checked by hash, no network), else downloaded from Debian's archives
//! through a private apt state (the host's own apt configuration is left alone) and checked
//! against the lock. Only the kernel image is kept: everything keytrail needs is built in (BPF,
//! BTF, cgroup2, loopback, the serial console).
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::lock;

/// One kernel series of the matrix.
pub struct Series {
    /// What `--kernel` takes.
    pub name: &'static str,
    /// Package names of this series match `linux-image-{prefix}N{suffix}` (N a number, the
    /// newest wins), or with `prefix` empty, any `linux-image-X.Y.Z{suffix}` (the newest).
    prefix: &'static str,
    suffix: &'static str,
}

pub const SERIES: &[Series] = &[
    Series {
        name: "5.10",
        prefix: "5.10.0-",
        suffix: "-amd64",
    },
    Series {
        name: "6.1",
        prefix: "6.1.0-",
        suffix: "-amd64",
    },
    Series {
        name: "6.12",
        prefix: "6.12.",
        suffix: "+deb12-amd64",
    },
    Series {
        name: "newest",
        prefix: "",
        suffix: "+deb13-amd64",
    },
];

const SOURCES: &str = "\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bullseye-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
";

/// apt with its own lists and cache under `dir`.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial", "debs"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::write(dir.join("sources.list"), SOURCES)?;
        Ok(Self { dir: dir.into() })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let d = self.dir.display();
        c.arg(format!("-oDir::Etc::SourceList={d}/sources.list"))
            .arg("-oDir::Etc::SourceParts=/nonexistent")
            .arg(format!("-oDir::State::Lists={d}/lists"))
            .arg(format!("-oDir::Cache={d}/cache"))
            .arg("-oDir::State::status=/dev/null")
            .arg("-oAPT::Architecture=amd64")
            .arg("-oAPT::Sandbox::User=root");
        c
    }

    fn update(&self) -> anyhow::Result<()> {
        let out = self.command("apt-get").args(["-qq", "update"]).output()?;
        if !out.status.success() {
            bail!(
                "apt-get update for the kernel archives failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn package_names(&self) -> anyhow::Result<Vec<String>> {
        let out = self
            .command("apt-cache")
            .args(["pkgnames", "linux-"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// The version apt would download of `package`, and its .deb's SHA-256 from the index.
    fn show(&self, package: &str) -> anyhow::Result<(String, String)> {
        let out = self
            .command("apt-cache")
            .args(["show", "--no-all-versions", package])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .with_context(|| format!("apt-cache show {package}: no {name}"))
        };
        Ok((field("Version:")?, field("SHA256:")?))
    }

    /// Downloads `package` at `version` into debs/ and returns the .deb's path.
    fn download(&self, package: &str, version: &str) -> anyhow::Result<PathBuf> {
        let debs = self.dir.join("debs");
        let status = self
            .command("apt-get")
            .args(["-qq", "download", &format!("{package}={version}")])
            .current_dir(&debs)
            .status()?;
        if !status.success() {
            bail!("apt-get download {package}={version} failed");
        }
        let prefix = format!("{}_", package);
        fs::read_dir(&debs)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
            .with_context(|| format!("{package}: downloaded, but no .deb found in {debs:?}"))
    }
}

/// Version numbers in a package name, for ordering: 6.12.117 > 6.12.9.
fn version_key(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The newest package of `series` among `names`: the image package, and the package that holds
/// its vmlinuz (from 6.19 Debian moved it to `linux-binary-*`).
fn newest(series: &Series, names: &[String]) -> Option<(String, String)> {
    let version = names
        .iter()
        .filter_map(|n| n.strip_prefix("linux-image-")?.strip_suffix(series.suffix))
        .filter(|v| {
            let rest = v.strip_prefix(series.prefix).unwrap_or("");
            let numeric =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
            if series.prefix.is_empty() {
                numeric(v)
            } else {
                numeric(rest) && !rest.contains('.')
            }
        })
        .max_by_key(|v| version_key(v))?;
    let binary = format!("linux-binary-{version}{}", series.suffix);
    let holder = if names.contains(&binary) {
        binary
    } else {
        format!("linux-image-{version}{}", series.suffix)
    };
    Some((format!("{version}{}", series.suffix), holder))
}

/// Pulls the kernel image out of a .deb (it is in /boot, or in /usr/lib/modules from 6.19).
fn extract_vmlinuz(deb: &Path, to: &Path) -> anyhow::Result<()> {
    let scratch = to.with_extension("extract");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&scratch)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("dpkg-deb -x {deb:?} failed");
    }
    let found = ["boot", "usr/lib/modules"]
        .iter()
        .flat_map(|d| walk(&scratch.join(d)))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
        })
        .with_context(|| format!("no vmlinuz in {deb:?}"))?;
    fs::rename(&found, to)?;
    fs::remove_dir_all(&scratch)?;
    Ok(())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A kernel ready to boot.
pub struct Kernel {
    pub series: &'static str,
    /// Debian's release name, e.g. 6.12.117+deb12-amd64.
    pub release: String,
    pub vmlinuz: PathBuf,
}

/// apt with its lists fresh, made only when something must be looked up or downloaded.
fn apt<'a>(slot: &'a mut Option<Apt>, work: &Path) -> anyhow::Result<&'a Apt> {
    if slot.is_none() {
        let apt = Apt::new(&work.join("apt"))?;
        eprintln!("xtask vm-test: looking up kernels in Debian's archives");
        apt.update()?;
        *slot = Some(apt);
    }
    Ok(slot.as_ref().expect("just made"))
}

/// Downloads `package` at `version`, checks the .deb against `deb_sha256`, and puts its vmlinuz
/// at `to`; returns the vmlinuz's SHA-256.
fn download_vmlinuz(
    apt: &Apt,
    package: &str,
    version: &str,
    deb_sha256: &str,
    to: &Path,
) -> anyhow::Result<String> {
    eprintln!("xtask vm-test: downloading {package} {version}");
    let deb = apt.download(package, version)?;
    let got = lock::sha256(&deb)?;
    if got != deb_sha256 {
        let _ = fs::remove_file(&deb);
        bail!("{package} {version}: the .deb's SHA-256 is {got}, the lock says {deb_sha256}");
    }
    extract_vmlinuz(&deb, to)?;
    fs::remove_file(&deb)?; // the image is kept; the package (up to 100 MB) is not
    lock::sha256(to)
}

/// The kernels of `wanted` series, as the lock pins them. With `refresh`, the newest of each
/// series in Debian's archives is pinned first (and downloaded), and the lock rewritten.
pub fn fetch(
    wanted: &[&'static Series],
    work: &Path,
    refresh: bool,
) -> anyhow::Result<Vec<Kernel>> {
    let lock_path = lock::path();
    let mut pins = lock::read(&lock_path)?;
    let cache = lock::cache_dir();
    fs::create_dir_all(&cache)
        .with_context(|| format!("creating the kernel cache {}", cache.display()))?;
    let mut slot = None;
    if refresh {
        let apt = apt(&mut slot, work)?;
        let names = apt.package_names()?;
        for series in wanted {
            let (release, package) = newest(series, &names)
                .with_context(|| format!("no {} kernel in Debian's archives", series.name))?;
            let (version, deb_sha256) = apt.show(&package)?;
            let vmlinuz = cache.join(format!("vmlinuz-{release}"));
            let vmlinuz_sha256 = download_vmlinuz(apt, &package, &version, &deb_sha256, &vmlinuz)?;
            pins.retain(|p| p.series != series.name);
            pins.push(lock::Pin {
                series: series.name.to_owned(),
                release,
                package,
                version,
                deb_sha256,
                vmlinuz_sha256,
            });
        }
        pins.sort_by_key(|p| SERIES.iter().position(|s| s.name == p.series));
        lock::write(&lock_path, &pins)?;
        eprintln!("xtask vm-test: pinned in {}", lock_path.display());
    }
    let mut kernels = Vec::new();
    for series in wanted {
        let pin = pins
            .iter()
            .find(|p| p.series == series.name)
            .with_context(|| {
                format!(
                    "{} pins no {} kernel: run `cargo xtask vm-test --refresh`",
                    lock_path.display(),
                    series.name
                )
            })?;
        let vmlinuz = cache.join(format!("vmlinuz-{}", pin.release));
        let cached = vmlinuz.exists() && lock::sha256(&vmlinuz)? == pin.vmlinuz_sha256;
        if !cached {
            let apt = apt(&mut slot, work)?;
            let got = download_vmlinuz(apt, &pin.package, &pin.version, &pin.deb_sha256, &vmlinuz)
                .with_context(|| {
                    format!(
                        "the pinned {} {} is not in the cache ({}) and could not be downloaded; \
                         if Debian no longer carries it, pin another with --refresh",
                        pin.package,
                        pin.version,
                        cache.display()
                    )
                })?;
            if got != pin.vmlinuz_sha256 {
                bail!(
                    "{}: the vmlinuz's SHA-256 is {got}, the lock says {}",
                    pin.package,
                    pin.vmlinuz_sha256
                );
            }
        }
        kernels.push(Kernel {
            series: series.name,
            release: pin.release.clone(),
            vmlinuz,
        });
    }
    Ok(kernels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_package_of_each_series_is_chosen() {
        let names: Vec<String> = [
            "linux-image-5.10.0-9-amd64",
            "linux-image-5.10.0-46-amd64",
            "linux-image-5.10.0-46-rt-amd64",
            "linux-image-6.12.9+deb12-amd64",
            "linux-image-6.12.117+deb12-amd64",
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.19.14+deb13-amd64",
            "linux-image-7.3.4+deb13-amd64",
            "linux-binary-7.3.4+deb13-amd64",
        ]
        .map(String::from)
        .to_vec();
        let pick = |name: &str| newest(SERIES.iter().find(|s| s.name == name).unwrap(), &names);
        assert_eq!(
            pick("5.10"),
            Some((
                "5.10.0-46-amd64".into(),
                "linux-image-5.10.0-46-amd64".into()
            ))
        );
        assert_eq!(
            pick("6.12"),
            Some((
                "6.12.117+deb12-amd64".into(),
                "linux-image-6.12.117+deb12-amd64".into()
            ))
        );
        assert_eq!(
            pick("newest"),
            Some((
                "7.3.4+deb13-amd64".into(),
                "linux-binary-7.3.4+deb13-amd64".into()
            ))
        );
        assert_eq!(pick("6.1"), None);
    }
}
