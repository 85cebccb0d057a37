#!/usr/bin/env python3
"""Checks the Grafana dashboard: valid JSON, unique panel ids, no overlapping
panels, and every PromQL expression parses (promtool checks them as the
expressions of generated recording rules).

Usage: check_dashboard.py DASHBOARD.json
"""

import json
import pathlib
import subprocess
import sys
import tempfile

import yaml


def main():
    dashboard = json.loads(pathlib.Path(sys.argv[1]).read_text())
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    problems = []
    if len(ids) != len(set(ids)):
        problems.append("duplicate panel ids")
    cells = {}
    for panel in panels:
        grid = panel["gridPos"]
        if grid["x"] + grid["w"] > 24:
            problems.append(f"panel {panel['title']!r} is wider than the grid")
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in cells:
                    problems.append(f"panels {cells[(x, y)]!r} and {panel['title']!r} overlap")
                    break
                cells[(x, y)] = panel["title"]
            else:
                continue
            break
    rules = []
    for panel in panels:
        for target in panel.get("targets", []):
            # Grafana variables are plain strings inside label matchers; give
            # the regex variables a value that PromQL accepts.
            expr = target["expr"].replace("$region", ".*")
            rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId'].lower()}", "expr": expr})
    for annotation in dashboard.get("annotations", {}).get("list", []):
        rules.append({"record": "dashboard:annotation", "expr": annotation["expr"]})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, handle)
    result = subprocess.run(["promtool", "check", "rules", handle.name], capture_output=True, text=True)
    pathlib.Path(handle.name).unlink()
    if result.returncode != 0:
        problems.append("PromQL does not parse:\n" + result.stdout + result.stderr)
    if problems:
        sys.exit("check_dashboard: " + "\n".join(problems))
    print(f"check_dashboard: {len(panels)} panels, {len(rules)} expressions parse")


if __name__ == "__main__":
    main()
