//! The Kubernetes DaemonSet (deploy/kubernetes/keytrail.yaml): valid against the API's schemas
//! for the versions it targets, strictly (kubernetes-validate, in the virtualenv
//! xtask/setup.sh makes; tests/kubernetes/check.py), and in step with the rest of keytrail:
//! the systemd unit's capabilities, and arguments the binary takes. Needs no root.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use keytrail_tests::*;
use serde_json::Value;

const PYTHON: &str = "/opt/keytrail-test-tools/kubernetes/bin/python";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifest() -> PathBuf {
    workspace().join("deploy/kubernetes/keytrail.yaml")
}

fn python() -> &'static str {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run ./xtask/setup.sh (it installs kubernetes-validate)"
    );
    PYTHON
}

/// (passed, what the checker printed) for `file`.
fn check(file: &Path) -> (bool, String) {
    let out = Command::new(python())
        .arg(workspace().join("tests/kubernetes/check.py"))
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The manifest's documents, as JSON.
fn documents() -> Vec<Value> {
    let out = run(Command::new(python()).arg("-c").arg(
        "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
    ).arg(manifest()));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn container() -> Value {
    let daemonset = documents()
        .into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    daemonset["spec"]["template"]["spec"]["containers"][0].clone()
}

#[test]
fn the_daemonset_is_valid_for_the_api_strictly() {
    let (ok, said) = check(&manifest());
    assert!(ok, "the manifest does not validate:\n{said}");
    eprintln!("{}", said.trim());
    // The check is strict: a misspelt field (as a hand edit makes) fails it.
    let text = fs::read_to_string(manifest()).unwrap();
    let misspelt = scratch_dir("manifest").join("misspelt.yaml");
    fs::write(&misspelt, text.replace("hostPID: true", "hostPid: true")).unwrap();
    let (ok, said) = check(&misspelt);
    assert!(
        !ok && said.contains("hostPid"),
        "a misspelt field passed:\n{said}"
    );
}

#[test]
fn the_daemonset_has_the_units_capabilities_and_no_others() {
    let unit = fs::read_to_string(workspace().join("xtask/dist/keytrail.service")).unwrap();
    let mut from_unit: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit's bounding set")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_owned())
        .collect();
    let security = &container()["securityContext"];
    let mut added: Vec<String> = security["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    from_unit.sort();
    added.sort();
    assert_eq!(added, from_unit);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(security["privileged"], false);
    assert_eq!(security["allowPrivilegeEscalation"], false);
}

#[test]
fn the_daemonsets_arguments_are_ones_keytrail_takes() {
    let container = container();
    assert_eq!(container["command"][0], "/usr/bin/keytrail");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    // clap refuses an unknown argument before it reaches --help.
    let out = Command::new(keytrail_bin())
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keytrail {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The cgroup root is the node's, at the path keytrail looks for it.
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(
        mounts.iter().any(|m| m["mountPath"] == "/sys/fs/cgroup"),
        "the node's cgroup2 root is mounted"
    );
}

/// Every system path of the default policy is on a mount of the node's at its own path, but
/// the pod's own service-account token (the pod gets none).
#[test]
fn the_default_policys_system_paths_are_mounted_from_the_node() {
    let policy = scratch_dir("manifest-policy").join("policy.toml");
    fs::write(
        &policy,
        run(Command::new(keytrail_bin()).args(["policy", "--default"])).stdout,
    )
    .unwrap();
    let out = run(Command::new(python())
        .arg("-c")
        .arg(
            "import json, sys, tomllib; p = tomllib.load(open(sys.argv[1], 'rb')); \
             print(json.dumps([x for c in p.get('credentials', []) for x in c.get('paths', []) \
             if x.startswith('/')]))",
        )
        .arg(&policy));
    let paths: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(paths.len() > 5, "{paths:?}");
    let mount_paths: Vec<String> = container()["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap().to_owned())
        .collect();
    for path in paths
        .iter()
        .filter(|p| !p.contains("/secrets/kubernetes.io/"))
    {
        assert!(
            mount_paths
                .iter()
                .any(|m| path.starts_with(&format!("{m}/"))),
            "{path} is on no mount of the node's ({mount_paths:?})"
        );
    }
}
