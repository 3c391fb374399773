//! Helpers the unit tests of several stages share.
use std::{
    fs,
    path::{Path, PathBuf},
};

/// The scenario folders under `src/<stage>/scenarios`, sorted.
pub fn scenario_dirs(stage: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(stage)
        .join("scenarios");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The DNS servers tests trust: the one recorded packets come from (`encode::SERVER`).
pub fn resolvers() -> crate::names::Resolvers {
    crate::names::Resolvers::only(vec![
        crate::decode::encode::SERVER.to_string().parse().unwrap(),
    ])
}

/// An empty scratch directory of this test process, named after `what`.
pub fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keytrail-{what}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}
