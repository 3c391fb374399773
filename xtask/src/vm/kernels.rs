//! Debian kernels for the matrix: found in Debian's archives through a private apt state (the
//! host's own apt configuration is left alone), downloaded once, and cached as bare `vmlinuz`
//! files under target/vm/kernels. Only the kernel image is kept: everything keytrail needs is
//! built in (BPF, BTF, cgroup2, loopback, the serial console).
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

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

    /// Downloads `package` into debs/ and returns the .deb's path.
    fn download(&self, package: &str) -> anyhow::Result<PathBuf> {
        let debs = self.dir.join("debs");
        let status = self
            .command("apt-get")
            .args(["-qq", "download", package])
            .current_dir(&debs)
            .status()?;
        if !status.success() {
            bail!("apt-get download {package} failed");
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

/// The kernels of `wanted` series, from the cache or downloaded into it.
pub fn fetch(wanted: &[&'static Series], dir: &Path) -> anyhow::Result<Vec<Kernel>> {
    let apt = Apt::new(&dir.join("apt"))?;
    eprintln!("xtask vm-test: looking up kernels in Debian's archives");
    apt.update()?;
    let names = apt.package_names()?;
    let mut kernels = Vec::new();
    for series in wanted {
        let (release, holder) = newest(series, &names)
            .with_context(|| format!("no {} kernel in Debian's archives", series.name))?;
        let vmlinuz = dir.join("kernels").join(format!("vmlinuz-{release}"));
        if !vmlinuz.exists() {
            eprintln!("xtask vm-test: downloading {holder}");
            fs::create_dir_all(vmlinuz.parent().unwrap())?;
            let deb = apt.download(&holder)?;
            extract_vmlinuz(&deb, &vmlinuz)?;
            fs::remove_file(&deb)?; // the image is kept; the package (up to 100 MB) is not
        }
        kernels.push(Kernel {
            series: series.name,
            release,
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
