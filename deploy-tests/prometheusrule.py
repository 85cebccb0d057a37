#!/usr/bin/env python3
"""The alerts as a PrometheusRule object for the Prometheus Operator.

monitoring/rules.yaml is the source (promtool checks and unit-tests it);
k8s/base/monitoring/prometheusrule.yaml is the same groups wrapped in a
PrometheusRule, which the base applies in every cluster. This script
writes the object, or checks that the committed one is current.

Usage: prometheusrule.py write | check
"""

import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "monitoring" / "rules.yaml"
TARGET = ROOT / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from monitoring/rules.yaml by deploy-tests/prometheusrule.py
# (`python deploy-tests/prometheusrule.py write`); check-deploy fails when
# it is out of date. Edit monitoring/rules.yaml, never this file.
#
# One per cluster: with one Prometheus per region, every alert is
# evaluated on that region's data (the SLO alerts then watch each region's
# error ratio, stricter than the service-wide SLO); with one global
# Prometheus (Thanos, Amazon Managed Prometheus), apply this object in one
# place only, and the sums run across regions (docs/deploy.md, "Alerts").
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL) as literal blocks, as in the source."""


def _string(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def render():
    groups = yaml.safe_load(SOURCE.read_text())["groups"]
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "geo",
            "labels": {"app.kubernetes.io/name": "geo-alerts", "app.kubernetes.io/component": "monitoring"},
        },
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    text = render()
    if sys.argv[1] == "write":
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        TARGET.write_text(text)
        print(f"wrote {TARGET.relative_to(ROOT)}")
        return
    if not TARGET.exists() or TARGET.read_text() != text:
        sys.exit(f"{TARGET.relative_to(ROOT)} is out of date: run python deploy-tests/prometheusrule.py write")
    print(f"{TARGET.relative_to(ROOT)} matches monitoring/rules.yaml")


if __name__ == "__main__":
    main()
