"""What the deployment pins, checked by consistency.py.

Terraform provider constraints whose floor has every feature the modules
use: a floor below the release that introduced a feature lets `terraform
init` pick a provider that rejects the configuration on the first plan.

Images by digest: every overlay names its images by digest (never by tag,
which a registry can move), and every container of the rendered manifests
runs an image pinned by digest.
"""

import re

import hcl2
import yaml

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

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


def _pod_specs(document):
    """The pod templates of a rendered object (none for a kind without one)."""
    spec = document.get("spec", {})
    if document.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template", {}).get("spec")
    return [template] if template else []


def check_images_by_digest(checks, k8s_root, rendered_dir, overlays):
    """Every overlay's `images` entry pins a digest and no tag; every
    container and init container of every rendered overlay runs
    <repository>@sha256:<digest>."""
    for region in overlays:
        kustomization = yaml.safe_load((k8s_root / "overlays" / region / "kustomization.yaml").read_text())
        images = kustomization.get("images", [])
        checks.true(f"{region}: the overlay sets the images", len(images) > 0)
        for image in images:
            name = image.get("name")
            checks.true(f"{region}: image {name} is pinned by digest (digest: sha256:<64 hex>)",
                        DIGEST.fullmatch(str(image.get("digest", ""))) is not None, str(image))
            repository = str(image.get("newName", name)).rsplit("/", 1)[-1]
            checks.true(f"{region}: image {name} has no tag (newTag, or a tag in newName)",
                        "newTag" not in image and ":" not in repository and "@" not in repository, str(image))
        running = set()
        for document in yaml.safe_load_all((rendered_dir / f"{region}.yaml").read_text()):
            for pod in _pod_specs(document or {}):
                for spec in pod.get("initContainers", []) + pod.get("containers", []):
                    running.add(spec["image"])
        checks.true(f"{region}: rendered manifests run images", len(running) > 0)
        for image in sorted(running):
            checks.true(f"{region}: rendered image {image} is <repository>@sha256:<digest>",
                        re.fullmatch(r"[^:@]+(:[0-9]+)?(/[^:@]+)*@" + DIGEST.pattern, image) is not None)
