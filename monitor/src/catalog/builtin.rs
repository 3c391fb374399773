//! The built-in catalog: where each kind of credential lives, by convention of its tools.
use super::kind::Kind;

/// Paths relative to a home directory; a `*` is a glob.
pub const HOME: &[(&str, Kind)] = &[
    (".aws/credentials", Kind::Aws),
    (".aws/config", Kind::Aws),
    (
        ".config/gcloud/application_default_credentials.json",
        Kind::Gcp,
    ),
    (".config/gcloud/credentials.db", Kind::Gcp),
    (".config/gcloud/access_tokens.db", Kind::Gcp),
    (".config/gcloud/legacy_credentials/*/adc.json", Kind::Gcp),
    (".azure/accessTokens.json", Kind::Azure),
    (".azure/msal_token_cache.json", Kind::Azure),
    (".azure/msal_token_cache.bin", Kind::Azure),
    (".azure/service_principal_entries.json", Kind::Azure),
    (".kube/config", Kind::Kube),
    (".docker/config.json", Kind::Docker),
    (".config/gh/hosts.yml", Kind::Github),
    (".git-credentials", Kind::Git),
    (".config/git/credentials", Kind::Git),
    (".netrc", Kind::Netrc),
    (".npmrc", Kind::Npm),
    (".pypirc", Kind::Pypi),
    (".ssh/id_rsa", Kind::Ssh),
    (".ssh/id_dsa", Kind::Ssh),
    (".ssh/id_ecdsa", Kind::Ssh),
    (".ssh/id_ecdsa_sk", Kind::Ssh),
    (".ssh/id_ed25519", Kind::Ssh),
    (".ssh/id_ed25519_sk", Kind::Ssh),
    (".vault-token", Kind::Vault),
];

/// Absolute system paths; a `*` is a glob.
pub const SYSTEM: &[(&str, Kind)] = &[
    ("/etc/kubernetes/admin.conf", Kind::Kube),
    ("/etc/kubernetes/kubelet.conf", Kind::Kube),
    ("/etc/kubernetes/controller-manager.conf", Kind::Kube),
    ("/etc/kubernetes/scheduler.conf", Kind::Kube),
    ("/var/lib/kubelet/kubeconfig", Kind::Kube),
    (
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        Kind::Kube,
    ),
    (
        "/run/secrets/kubernetes.io/serviceaccount/token",
        Kind::Kube,
    ),
    ("/etc/ssh/ssh_host_*_key", Kind::Ssh),
    ("/etc/docker/daemon.json", Kind::Docker),
    ("/root/.vault-token", Kind::Vault),
];
