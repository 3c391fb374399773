#!/usr/bin/env bash
# Installs what keytrail's build and tests need on a fresh Debian 12 machine, and nothing when it is
# already there. Called by both README commands before `cargo xtask`, because the pinned toolchain must
# exist before cargo can build xtask itself (RUSTUP_AUTO_INSTALL=0 on this machine kind).
set -euo pipefail

TOOLCHAIN=1.98.0          # keep in step with rust-toolchain.toml
LLVM=22                   # the LLVM of that rustc; bpf-linker must link the same major
BPF_LINKER=0.13.0

say() { printf 'setup: %s\n' "$*" >&2; }

apt_packages=(llvm-${LLVM}-dev libpolly-${LLVM}-dev gcc python3 git curl iproute2 passwd util-linux openssh-client
    dnsmasq-base openssl libssl-dev python3-venv busybox-static cpio systemd rsyslog
    mmdebstrap nats-server)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The kernel matrix (cargo xtask vm-test) boots VMs with qemu. This machine kind carries qemu-utils
# from the release's backports; qemu-system-x86 comes from there too, so the two stay in step (the
# release's own qemu would replace it).
if ! command -v qemu-system-x86_64 >/dev/null; then
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    say "installing qemu-system-x86 from ${codename}-backports"
    backports=/etc/apt/sources.list.d/keytrail-${codename}-backports.sources
    if ! grep -rqs "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: ${codename}-backports" \
            "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" > "$backports"
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends -t "${codename}-backports" qemu-system-x86 >/dev/null
fi

if ! command -v rustup >/dev/null; then
    say "rustup is missing: keytrail builds with a pinned toolchain (${TOOLCHAIN}) that rustup installs."
    say "Install rustup from your distribution (apt-get install rustup, Debian 13 and later) or as"
    say "https://rustup.rs describes, then run this script again."
    exit 1
fi

if ! rustup toolchain list | grep -q "^${TOOLCHAIN}-"; then
    say "installing Rust ${TOOLCHAIN} (rust-src, clippy, rustfmt)"
    rustup toolchain install "$TOOLCHAIN" --profile minimal -c rust-src -c clippy -c rustfmt
fi

if ! bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER"; then
    say "building bpf-linker ${BPF_LINKER} against LLVM ${LLVM}"
    LLVM_PREFIX=/usr/lib/llvm-${LLVM} cargo +"$TOOLCHAIN" install bpf-linker --version "$BPF_LINKER" \
        --no-default-features --features llvm-${LLVM} --locked
fi

# Agents' own CLIs, for the tests that let them write their configuration files as they do
# (tests/tests/agents.rs): Claude Code from npm, pinned, in a prefix of its own.
CLAUDE_CODE=2.1.197
TOOLS=/opt/keytrail-test-tools
if ! "$TOOLS/node_modules/.bin/claude" --version 2>/dev/null | grep -q "$CLAUDE_CODE"; then
    if command -v npm >/dev/null; then
        say "installing Claude Code ${CLAUDE_CODE} (npm) in ${TOOLS}, for the tests"
        # Once more on failure: a registry hiccup should not fail a whole CI run.
        for attempt in 1 2; do
            npm install --silent --no-audit --no-fund --prefix "$TOOLS" \
                "@anthropic-ai/claude-code@${CLAUDE_CODE}" >/dev/null && break
            [ "$attempt" = 2 ] && exit 1
            say "npm install failed; trying once more"
        done
    else
        say "npm is missing: the agents' tests need Claude Code from npm (apt-get install npm)"
    fi
fi

# Schema validators and a NATS client, pinned, from PyPI, each in a virtualenv of its own: OCSF's
# (the schema's published exports in ocsf-json-schema, checked with jsonschema;
# tests/tests/ocsf.rs), Kubernetes' (kubernetes-validate ships the API's schemas;
# tests/tests/manifest.rs), and nats-py, the fleet tests' consumer (tests/tests/fleet.rs).
pip_tool() { # NAME PACKAGE==VERSION...
    local name=$1; shift
    if ! "$TOOLS/$name/bin/pip" show -q "${@%%==*}" 2>/dev/null >/dev/null \
        || ! "$TOOLS/$name/bin/pip" freeze 2>/dev/null | grep -qx "$1"; then
        say "installing $* (PyPI) in ${TOOLS}/${name}, for the tests"
        /usr/bin/python3 -m venv "$TOOLS/$name"
        for attempt in 1 2; do
            "$TOOLS/$name/bin/pip" install -q "$@" && break
            [ "$attempt" = 2 ] && exit 1
            say "pip install failed; trying once more"
        done
    fi
}
pip_tool ocsf ocsf-json-schema==1.2.0 jsonschema==4.26.0
pip_tool kubernetes kubernetes-validate==1.37.0
pip_tool nats nats-py==2.16.0

# The AWS CLI, for proof of use with SigV4 (tests/tests/proof_tls.rs), where none is on PATH:
# pinned, from PyPI, in a virtualenv of its own.
AWSCLI=1.45.11
if ! command -v aws >/dev/null && ! "$TOOLS/awscli/bin/aws" --version >/dev/null 2>&1; then
    say "installing the AWS CLI ${AWSCLI} (PyPI) in ${TOOLS}/awscli, for the tests"
    /usr/bin/python3 -m venv "$TOOLS/awscli"
    for attempt in 1 2; do
        "$TOOLS/awscli/bin/pip" install -q "awscli==${AWSCLI}" && break
        [ "$attempt" = 2 ] && exit 1
        say "pip install failed; trying once more"
    done
fi
