//! Where the policy comes from, as operators of system services expect: `--config FILE`, else
//! the file `KEYTRAIL_CONFIG` names, else /etc/keytrail/policy.toml when it exists, else the
//! embedded default. The same place is read again on SIGHUP.
use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use super::{Policy, PolicyError};

/// The packaged policy's place.
pub const SYSTEM_PATH: &str = "/etc/keytrail/policy.toml";
/// The environment variable that names a policy file.
pub const ENV_VAR: &str = "KEYTRAIL_CONFIG";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicySource {
    File(PathBuf),
    Embedded,
}

impl PolicySource {
    /// The policy `--config` (`flag`) names, else the environment's, else the system's, else
    /// the embedded default.
    pub fn find(flag: Option<&Path>) -> Self {
        Self::find_in(flag, std::env::var_os(ENV_VAR), Path::new(SYSTEM_PATH))
    }

    fn find_in(flag: Option<&Path>, env: Option<OsString>, system: &Path) -> Self {
        if let Some(path) = flag {
            return Self::File(path.to_owned());
        }
        if let Some(path) = env.filter(|v| !v.is_empty()) {
            return Self::File(PathBuf::from(path));
        }
        if system.exists() {
            return Self::File(system.to_owned());
        }
        Self::Embedded
    }

    pub fn load(&self) -> Result<Policy, PolicyError> {
        match self {
            Self::File(path) => Policy::load(path),
            Self::Embedded => Ok(Policy::embedded()),
        }
    }

    /// The file's path, or `embedded default` (for `ready` and the log).
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Embedded => "embedded default".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_then_the_environment_then_the_system_file_then_the_default() {
        let present = std::env::temp_dir().join(format!("kt-policy-{}.toml", std::process::id()));
        std::fs::write(&present, "").unwrap();
        let absent = Path::new("/nonexistent/keytrail/policy.toml");
        let flag = Path::new("/etc/flag.toml");
        let env = || Some(OsString::from("/etc/env.toml"));
        let file = |p: &str| PolicySource::File(PathBuf::from(p));
        assert_eq!(
            PolicySource::find_in(Some(flag), env(), &present),
            file("/etc/flag.toml")
        );
        assert_eq!(
            PolicySource::find_in(None, env(), &present),
            file("/etc/env.toml")
        );
        assert_eq!(
            PolicySource::find_in(None, Some(OsString::new()), &present),
            PolicySource::File(present.clone()),
            "an empty variable names nothing"
        );
        assert_eq!(
            PolicySource::find_in(None, None, absent),
            PolicySource::Embedded
        );
        std::fs::remove_file(present).unwrap();
    }
}
