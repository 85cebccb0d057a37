"""What the deployment documents claim, checked against what the sources
do (by consistency.py), so that a fixed gap does not stay listed as open
and a module's README does not describe an older module.
"""

import re

import hcl2

from pins import constraint_floor, provider_constraints


def controller_metric_labels(root):
    """The label names of the controller's metrics, from the label lists of
    failover-controller/src/metrics.rs (its unit tests excluded)."""
    source = (root / "failover-controller" / "src" / "metrics.rs").read_text().split("#[cfg(test)]")[0]
    labels = set()
    for names in re.findall(r'&\[((?:\s*"[^"]*"\s*,?)+)\]', source):
        labels |= set(re.findall(r'"([^"]*)"', names))
    return labels


def markdown_section(text, title):
    """The body of the `## title` section of a Markdown document."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1) if match else ""


def check_metric_label_claim(checks, root):
    """The controller's metrics have no `region` label (the scrape adds the
    pod's), and docs/deploy.md does not list the collision as open."""
    labels = controller_metric_labels(root)
    checks.true("controller metrics: label lists found in metrics.rs", "target_region" in labels, str(sorted(labels)))
    checks.true("controller metrics: no `region` label (it would become exported_region)", "region" not in labels)
    open_items = markdown_section((root / "docs" / "deploy.md").read_text(), "Not supported yet")
    checks.true("docs/deploy.md has a \"Not supported yet\" section", open_items != "")
    checks.true("docs/deploy.md \"Not supported yet\" does not list the exported_region collision",
                "region" in labels or "exported_region" not in open_items)


def check_database_readme(checks, root):
    """terraform/modules/database/README.md names every SQL user main.tf
    creates and the provider floor versions.tf requires."""
    module = root / "terraform" / "modules" / "database"
    readme = (module / "README.md").read_text()
    with open(module / "main.tf") as handle:
        locals_blocks = hcl2.load(handle).get("locals", [])
    users = next((block["sql_users"] for block in locals_blocks if "sql_users" in block), [{}])
    users = users[0] if isinstance(users, list) else users
    checks.true("database module: main.tf creates SQL users (local.sql_users)", len(users) > 0)
    for user in sorted(users):
        checks.true(f"database README names the SQL user {user}", f"`{user}`" in readme)
    floors = {constraint_floor(version) for where, version in provider_constraints(root / "terraform", "cockroachdb/cockroach")
              if where.startswith("terraform/modules/database/")}
    for floor in sorted(floors):
        stated = ">= " + ".".join(map(str, floor))
        checks.true(f"database README states the provider floor `{stated}` of versions.tf", f"`{stated}`" in readme)
