"""What the deployment pins, checked by consistency.py.

Terraform provider constraints whose floor has every feature the modules
use: a floor below the release that introduced a feature lets `terraform
init` pick a provider that rejects the configuration on the first plan.
"""

import pathlib
import re

import hcl2

# Features of the CockroachDB Cloud provider (cockroachdb/cockroach) that
# the modules use, as a pattern of the HCL that uses them, and the first
# release that has them (the provider's CHANGELOG.md).
COCKROACH_FEATURES = {
    # 1.8.0 renamed the plans (DEDICATED became ADVANCED, SERVERLESS became
    # BASIC) and added STANDARD; older releases refuse these names.
    "cockroach_cluster plan ADVANCED, BASIC or STANDARD": (re.compile(r'\bplan\s*=\s*"(ADVANCED|BASIC|STANDARD)"'), (1, 8, 0)),
    "cockroach_cluster delete_protection": (re.compile(r"\bdelete_protection\s*="), (1, 6, 0)),
}


def _first(value):
    """bc-python-hcl2 wraps attribute values in one-element lists."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _version(text):
    return tuple(int(part) for part in (text.split(".") + ["0", "0"])[:3])


def constraint_floor(constraint):
    """The lowest version a Terraform version constraint admits, as far as
    its lower bounds say (">= 1.8.0", "~> 1.8", "= 1.8.0", "1.8.0"; "> X"
    counts as X); (0, 0, 0) when it has none."""
    floor = (0, 0, 0)
    for part in str(constraint).split(","):
        match = re.fullmatch(r"\s*(>=|~>|=|>)?\s*v?(\d+(?:\.\d+){0,2})\s*", part)
        if match:
            floor = max(floor, _version(match.group(2)))
    return floor


def provider_constraints(terraform_root, source):
    """Every `required_providers` entry of `source` under terraform_root:
    (file relative to terraform_root's parent, version constraint)."""
    found = []
    for path in sorted(terraform_root.rglob("*.tf")):
        if ".terraform" in path.parts or "required_providers" not in path.read_text():
            continue
        with open(path) as handle:
            blocks = hcl2.load(handle).get("terraform", [])
        for block in blocks:
            for providers in block.get("required_providers", []):
                for entry in providers.values():
                    entry = _first(entry)
                    if _first(entry.get("source", "")) == source:
                        found.append((path.relative_to(terraform_root.parent).as_posix(), _first(entry.get("version", ""))))
    return found


def check_cockroach_provider_floor(checks, terraform_root):
    """Every constraint on the CockroachDB provider admits only releases
    that have the features the modules use."""
    texts = [path.read_text() for path in terraform_root.rglob("*.tf") if ".terraform" not in path.parts]
    used = {feature: minimum for feature, (pattern, minimum) in COCKROACH_FEATURES.items()
            if any(pattern.search(text) for text in texts)}
    constraints = provider_constraints(terraform_root, "cockroachdb/cockroach")
    checks.true("terraform constrains the CockroachDB provider", len(constraints) > 0)
    for where, constraint in constraints:
        floor = constraint_floor(constraint)
        for feature, minimum in sorted(used.items()):
            checks.true(f"{where}: cockroach provider \"{constraint}\" has {feature} (>= {'.'.join(map(str, minimum))})",
                        floor >= minimum, f"its floor is {'.'.join(map(str, floor))}")
