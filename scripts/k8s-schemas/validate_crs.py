"""Validate rendered Kubernetes manifests that kubernetes-validate cannot: custom resources.

Usage: validate_crs.py RENDERED.yaml BUILTIN_OUT.yaml

- Writes the documents of built-in API groups to BUILTIN_OUT.yaml (for kubernetes-validate).
- Validates every custom resource against scripts/k8s-schemas/vendored/<group>/<version>/<Kind>.json
  (extracted from npm packages, see extract.sh) or, where no package ships one,
  scripts/k8s-schemas/handwritten/<group>/<version>/<Kind>.json (a reviewed subset).
  A custom resource without a schema is an error: add one rather than letting it pass unseen.
- Adds checks a schema cannot express (KEDA trigger metadata is a free-form string map).

Exit status 1 if any document fails. Needs jsonschema and PyYAML (both come with
kubernetes-validate).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

HERE = Path(__file__).resolve().parent
SCHEMA_DIRS = (("vendored", HERE / "vendored"), ("hand-written subset", HERE / "handwritten"))

# API groups served by Kubernetes itself ("" is the core group).
BUILTIN_GROUPS = {
    "",
    "apps",
    "batch",
    "policy",
    "autoscaling",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "events.k8s.io",
    "resource.k8s.io",
}

# KEDA redis-streams trigger metadata (keda.sh/docs/latest/scalers/redis-streams/).
REDIS_STREAMS_KEYS = {
    "address",
    "addressFromEnv",
    "host",
    "hostFromEnv",
    "port",
    "portFromEnv",
    "username",
    "usernameFromEnv",
    "passwordFromEnv",
    "stream",
    "consumerGroup",
    "pendingEntriesCount",
    "streamLength",
    "lagCount",
    "activationLagCount",
    "activationValue",
    "enableTLS",
    "unsafeSsl",
    "databaseIndex",
}


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def schema_for(api_version: str, kind: str) -> tuple[str, dict[str, Any]] | None:
    for label, root in SCHEMA_DIRS:
        path = root / api_version / f"{kind}.json"
        if path.is_file():
            return label, json.loads(path.read_text())
    return None


def keda_checks(doc: dict[str, Any]) -> list[str]:
    """What the ScaledObject schema cannot see: redis-streams metadata and the formula."""
    problems: list[str] = []
    spec = doc.get("spec") or {}
    triggers = spec.get("triggers") or []
    names = [t.get("name") for t in triggers]
    for index, trigger in enumerate(triggers):
        if trigger.get("type") != "redis-streams":
            continue
        where = f"spec.triggers[{index}]"
        meta = trigger.get("metadata") or {}
        unknown = sorted(set(meta) - REDIS_STREAMS_KEYS)
        if unknown:
            problems.append(f"{where}.metadata: unknown redis-streams keys {unknown}")
        for key in ("stream", "consumerGroup"):
            if not meta.get(key):
                problems.append(f"{where}.metadata.{key} is required")
        if not ({"address", "addressFromEnv", "host", "hostFromEnv"} & set(meta)):
            problems.append(f"{where}.metadata: needs address/addressFromEnv or host(FromEnv)")
        modes = {"pendingEntriesCount", "streamLength", "lagCount"} & set(meta)
        if len(modes) > 1:
            problems.append(f"{where}.metadata: choose one of {sorted(modes)}")
        if "lagCount" in meta and "activationLagCount" not in meta:
            problems.append(f"{where}.metadata: lagCount needs activationLagCount")
        for key in (
            "pendingEntriesCount",
            "streamLength",
            "lagCount",
            "activationLagCount",
            "databaseIndex",
        ):
            if key in meta and not str(meta[key]).isdigit():
                problems.append(f"{where}.metadata.{key} must be a non-negative integer string")
        for key in ("enableTLS", "unsafeSsl"):
            if key in meta and meta[key] not in ("true", "false"):
                problems.append(f'{where}.metadata.{key} must be "true" or "false"')
    modifiers = (spec.get("advanced") or {}).get("scalingModifiers")
    if modifiers:
        if len(set(names)) != len(names) or None in names:
            problems.append("scalingModifiers needs a unique name on every trigger")
        formula = modifiers.get("formula", "")
        # Identifiers not followed by "(" (those are functions of the expression language).
        tokens = set(re.findall(r"\b([A-Za-z_]\w*)\b(?!\s*\()", formula))
        missing = sorted(n for n in names if n not in tokens)
        unknown = sorted(t for t in tokens if t not in names)
        if missing:
            problems.append(f"scalingModifiers.formula leaves out triggers {missing}")
        if unknown:
            problems.append(f"scalingModifiers.formula names no trigger: {unknown}")
        if "target" not in modifiers:
            problems.append("scalingModifiers.target is required")
    return problems


def main(rendered: str, builtin_out: str) -> int:
    docs = [d for d in yaml.safe_load_all(Path(rendered).read_text()) if d]
    builtin: list[dict[str, Any]] = []
    failures = 0
    checked = 0
    for doc in docs:
        api_version = doc.get("apiVersion", "")
        kind = doc.get("kind", "")
        name = (doc.get("metadata") or {}).get("name", "?")
        if group_of(api_version) in BUILTIN_GROUPS:
            builtin.append(doc)
            continue
        checked += 1
        label = f"{api_version} {kind}/{name}"
        found = schema_for(api_version, kind)
        if found is None:
            print(
                f"FAIL {label}: no schema in scripts/k8s-schemas/{{vendored,handwritten}}/"
                f"{api_version}/{kind}.json"
            )
            failures += 1
            continue
        source, schema = found
        errors = sorted(Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        problems = [
            f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors
        ]
        if api_version.startswith("keda.sh/") and kind == "ScaledObject":
            problems += keda_checks(doc)
        if problems:
            failures += 1
            print(f"FAIL {label} ({source} schema)")
            for problem in problems:
                print(f"     {problem}")
        else:
            print(f"ok   {label} ({source} schema)")
    Path(builtin_out).write_text(yaml.safe_dump_all(builtin, sort_keys=False))
    print(
        f"custom resources: {checked} checked, {failures} failed; "
        f"{len(builtin)} built-in documents left for kubernetes-validate"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
