#!/usr/bin/env python3
"""Validates OCSF events, one JSON object per line, against the OCSF schema that the
`ocsf-json-schema` package ships (the schema's own JSON exports, offline), with `jsonschema`.

Usage: validate.py FILE|-    Prints one line per broken event and `N passed, M failed`;
exits 1 when any event is broken or there is none.

Each event is checked against its class (class_uid) at its version (metadata.version) with the
profiles it declares (metadata.profiles): unknown fields, nulls, wrong types and missing
required fields fail. The schema cannot say that type_uid, category_uid and activity_id agree;
that is checked here too."""
import json
import sys
from functools import lru_cache

from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema


@lru_cache(None)
def schema(version):
    return OcsfJsonSchemaEmbedded(get_ocsf_schema(version))


@lru_cache(None)
def validator(version, class_uid, profiles):
    s = schema(version)
    return Draft202012Validator(
        s.get_class_schema(s.lookup_class_name_from_uid(class_uid), list(profiles)))


def problems(event):
    if not isinstance(event, dict):
        return ["not a JSON object"]
    metadata = event.get("metadata") or {}
    class_uid = event.get("class_uid")
    try:
        v = validator(metadata.get("version"), class_uid,
                      tuple(sorted(metadata.get("profiles") or [])))
    except Exception as e:  # an unknown version or class
        return [f"class {class_uid!r} at version {metadata.get('version')!r}: {e}"]
    found = [f"{'/'.join(map(str, e.absolute_path)) or '(event)'}: {e.message[:300]}"
             for e in v.iter_errors(event)]
    activity = event.get("activity_id")
    if isinstance(class_uid, int) and isinstance(activity, int):
        if event.get("type_uid") != class_uid * 100 + activity:
            found.append(f"type_uid {event.get('type_uid')} is not class_uid * 100 + activity_id")
        if event.get("category_uid") != class_uid // 1000:
            found.append(f"category_uid {event.get('category_uid')} is not class_uid's category")
    return found


def main():
    source = sys.stdin if sys.argv[1:] in ([], ["-"]) else open(sys.argv[1], encoding="utf-8")
    passed = failed = 0
    for n, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            found = problems(json.loads(line))
        except json.JSONDecodeError as e:
            found = [f"not JSON: {e}"]
        if found:
            failed += 1
            for p in found:
                print(f"line {n}: {p}")
        else:
            passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
