#!/usr/bin/env python3
"""Checks Kubernetes manifests offline against the API's schemas as kubernetes-validate ships
them, strictly (an unknown field is an error, as a typo would be), for the oldest and the
newest version keytrail's manifest targets.

Usage: check.py FILE...   Prints `ok` or each problem; exits 1 on any.

Besides the schema: a kind or apiVersion the schemas do not know is an error (the library
only warns), and every volumeMount must name a volume of its pod."""
import sys

import kubernetes_validate
import yaml

# appArmorProfile, which the manifest uses, came with 1.30.
VERSIONS = ["1.30", "1.37"]


def problems(document):
    name = f"{document.get('kind')}/{(document.get('metadata') or {}).get('name')}"
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as e:
            yield f"{name} (Kubernetes {version}): {e.message}"
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            yield f"{name} (Kubernetes {version}): {where}: {e.message}"
    pod = ((document.get("spec") or {}).get("template") or {}).get("spec") or {}
    volumes = {v.get("name") for v in pod.get("volumes", [])}
    for container in pod.get("initContainers", []) + pod.get("containers", []):
        for mount in container.get("volumeMounts", []):
            if mount.get("name") not in volumes:
                yield f"{name}: {container.get('name')} mounts {mount.get('name')!r}, no volume of its pod"


def main():
    failed = False
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            documents = [d for d in yaml.safe_load_all(f) if d]
        found = [p for d in documents for p in problems(d)]
        for p in found:
            print(f"{path}: {p}")
        if found:
            failed = True
        else:
            print(f"ok {path}: {len(documents)} documents, Kubernetes {', '.join(VERSIONS)}, strict")
    return 1 if failed or not sys.argv[1:] else 0


if __name__ == "__main__":
    sys.exit(main())
