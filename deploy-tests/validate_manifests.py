#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests offline, with no warning allowed.

Built-in kinds go through `kubernetes-validate --strict` for the stated
Kubernetes version. Custom resources (ServiceMonitor, TargetGroupBinding),
which kubernetes-validate has no schema for, are checked with the strict
JSON schemas in crd-schemas/. A kind that is neither fails. A self-test
first proves that strict mode rejects an unknown field, so that a silently
lenient validator cannot pass everything.

Usage: validate_manifests.py KUBERNETES_VERSION RENDERED.yaml...
"""

import json
import pathlib
import subprocess
import sys
import tempfile

import jsonschema
import yaml

HERE = pathlib.Path(__file__).resolve().parent
CRD_SCHEMAS = HERE / "crd-schemas"


def crd_schema_path(document):
    group_version = document["apiVersion"].replace("/", "_")
    return CRD_SCHEMAS / f"{group_version}_{document['kind']}.json"


def is_builtin(document):
    group = document["apiVersion"].split("/")[0] if "/" in document["apiVersion"] else ""
    return group == "" or group.endswith(".k8s.io") or group in {
        "apps", "batch", "policy", "autoscaling",
    }


def run_kubernetes_validate(version, path):
    """Runs the CLI; returns the problems it printed (warnings count)."""
    result = subprocess.run(
        ["kubernetes-validate", "--strict", "--kubernetes-version", version, str(path)],
        capture_output=True, text=True, check=False,
    )
    output = (result.stdout + result.stderr).splitlines()
    problems = [line for line in output if not line.startswith("INFO ")]
    if result.returncode != 0 and not problems:
        problems.append(f"kubernetes-validate exited {result.returncode}")
    return problems


def self_test(version, workdir):
    bad = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "self-test"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "replicaz": 3,
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }
    path = workdir / "self-test.yaml"
    path.write_text(yaml.safe_dump(bad))
    if not run_kubernetes_validate(version, path):
        sys.exit("validate_manifests: self-test failed: --strict accepted an unknown field")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    version, files = sys.argv[1], [pathlib.Path(p) for p in sys.argv[2:]]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        self_test(version, workdir)
        for rendered in files:
            documents = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
            builtin = [d for d in documents if is_builtin(d)]
            custom = [d for d in documents if not is_builtin(d)]
            builtin_path = workdir / f"{rendered.stem}-builtin.yaml"
            builtin_path.write_text(yaml.safe_dump_all(builtin))
            for problem in run_kubernetes_validate(version, builtin_path):
                failures.append(f"{rendered.name}: {problem}")
            for document in custom:
                name = f"{document['kind']}/{document['metadata']['name']}"
                schema_path = crd_schema_path(document)
                if not schema_path.exists():
                    failures.append(f"{rendered.name}: {name}: no schema for {document['apiVersion']} (add one to crd-schemas/)")
                    continue
                validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))
                for error in validator.iter_errors(document):
                    path = ".".join(str(p) for p in error.absolute_path)
                    failures.append(f"{rendered.name}: {name}: {path}: {error.message}")
            print(f"validate_manifests: {rendered.name}: {len(builtin)} built-in objects (Kubernetes {version}, strict), {len(custom)} custom resources")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(f"validate_manifests: {len(failures)} problem(s)")


if __name__ == "__main__":
    main()
