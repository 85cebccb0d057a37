#!/usr/bin/env bash
# Installs the tools that tests and checks need, idempotently:
# - Debian packages: postgresql (via pg.sh), prometheus (promtool), and the
#   DNS tools of the controller's conformance tests: bind9-dnsutils (dig),
#   ldnsutils (drill), dnsviz; unbound, the drills' recursive resolver;
#   chromium, in which the drill report's test
#   (chaos/src/report/browser.rs) loads report.html and checks that its
#   charts draw without a script error;
# - Python packages listed in scripts/requirements-test.txt, in a virtualenv
#   at target/py (so nothing is installed into the system Python).
set -euo pipefail

tools_install() {
  local root; root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  # command -> Debian package; only the missing ones are installed.
  local wanted=(promtool:prometheus dig:bind9-dnsutils drill:ldnsutils dnsviz:dnsviz unbound:unbound chromium:chromium)
  local missing=() pair
  for pair in "${wanted[@]}"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "tools.sh: installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  local req="$root/scripts/requirements-test.txt"
  local venv="$root/target/py"
  if [ -s "$req" ]; then
    if [ ! -x "$venv/bin/python" ]; then
      mkdir -p "$root/target"
      python3 -m venv "$venv"
    fi
    # Reinstall only when the requirements changed.
    if ! cmp -s "$req" "$venv/.requirements" 2>/dev/null; then
      echo "tools.sh: installing Python test tools into $venv" >&2
      "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
      cp "$req" "$venv/.requirements"
    fi
  fi
}
