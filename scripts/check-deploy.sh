#!/usr/bin/env bash
# Offline checks of the deployment side: terraform/, k8s/, monitoring/, and
# their consistency with the binaries' configuration. No cloud account, no
# network beyond the package registries that tools.sh may use.
#
#   terraform  fmt -check everywhere; validate + test on provider-free
#              modules; checkov (offline) on everything, zero failures except
#              inline skips with a written reason
#   k8s        every overlay (the primary's with the migrate Jobs) rendered with kubectl
#              kustomize, validated strictly for Kubernetes $K8S_VERSION
#              (custom resources against deploy-tests/crd-schemas), checkov
#   monitoring promtool check + unit tests of the alert rules; dashboard JSON
#   consistency deploy-tests/consistency.py
#
# Run from anywhere: scripts/check-deploy.sh. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# The Kubernetes version the manifests are validated for (EKS, see
# terraform/modules/region variable kubernetes_version).
K8S_VERSION=1.33.0

step_started=0
step() {
  step_finish
  step_name=$1
  step_started=$SECONDS
  echo "== check-deploy: $step_name" >&2
}
step_finish() {
  if [ "$step_started" != 0 ] || [ -n "${step_name:-}" ]; then
    echo "   ($step_name: $((SECONDS - step_started)) s)" >&2
  fi
}
fail() {
  echo "check-deploy: FAILED: $*" >&2
  exit 1
}

# Tools: promtool and the Python virtualenv (checkov, kubernetes-validate,
# ...). tools.sh is idempotent and reinstalls only when requirements change.
export PATH="$root/target/py/bin:$PATH"
if ! command -v promtool >/dev/null 2>&1 || ! command -v checkov >/dev/null 2>&1 \
  || ! command -v kubernetes-validate >/dev/null 2>&1 \
  || ! cmp -s scripts/requirements-test.txt target/py/.requirements; then
  # shellcheck source=scripts/tools.sh
  source scripts/tools.sh
  tools_install
fi
for tool in terraform kubectl promtool checkov kubernetes-validate python; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done

work="$root/target/deploy"
rm -rf "$work"
mkdir -p "$work/rendered"

# Nothing may leave the machine: no provider downloads, no version checks.
: >"$work/terraformrc"
export TF_CLI_CONFIG_FILE="$work/terraformrc"
export CHECKPOINT_DISABLE=1
export TF_IN_AUTOMATION=1
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
export BC_SKIP_MAPPING=TRUE
export PYTHONDONTWRITEBYTECODE=1

checkov_offline() {
  # Bounded: checkov runs offline in seconds; the timeout catches a hang.
  # A run that checked nothing (wrong directory, parser change) fails too.
  local report="$work/checkov-$1.txt"
  shift
  if ! timeout 600 checkov --skip-download --compact --quiet --output cli "$@" | tee "$report"; then
    return 1
  fi
  grep -qE 'Passed checks: [1-9]' "$report" || { echo "checkov ran no check" >&2; return 1; }
}

# Inline skips must carry a reason: "checkov:skip=CKV_X: reason" in HCL,
# "checkov.io/skipN: CKV_X=reason" in Kubernetes annotations.
skips_without_reason() {
  grep -rnE 'checkov:skip=[A-Z0-9_]+ *(:\s*)?$' terraform || true
  grep -rnE 'checkov\.io/skip[0-9]+: *"?[A-Z0-9_]+"? *$' k8s || true
}

step "terraform fmt"
terraform fmt -check -recursive -diff terraform || fail "terraform fmt: run terraform fmt -recursive terraform"

step "terraform validate + test (provider-free modules)"
provider_free=0
for module in terraform/modules/*/; do
  module=${module%/}
  if grep -qE '^\s*(required_providers|resource "|data ")' "$module"/*.tf; then
    continue
  fi
  provider_free=$((provider_free + 1))
  echo "-- $module" >&2
  (
    cd "$module"
    terraform init -backend=false -input=false -no-color >/dev/null
    terraform validate -no-color
    terraform test -no-color
  ) || fail "terraform validate/test in $module"
done
[ "$provider_free" -ge 3 ] || fail "expected the provider-free modules topology, controller-policy and k8s-config"

# Modules with providers: validated, and their tests planned with mocked
# providers (mock_provider), when every provider they need is in the
# machine's provider mirror (TF_PROVIDER_MIRROR, default /opt/tf-plugins;
# nothing is downloaded). A module whose providers are not there is listed
# as skipped. The global module's test checks the Route53 record ownership.
step "terraform validate + test (modules with providers, mocked)"
mirror=${TF_PROVIDER_MIRROR:-/opt/tf-plugins}
printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n  direct {\n    exclude = ["*/*/*"]\n  }\n}\n' "$mirror" >"$work/terraformrc-mirror"
mocked=0
for module in terraform/modules/*/; do
  module=${module%/}
  grep -qE '^\s*required_providers' "$module"/*.tf || continue
  missing=$(grep -hoE 'source\s*=\s*"[a-z0-9-]+/[a-z0-9-]+"' "$module"/versions.tf | sed -E 's/.*"(.*)"/\1/' \
    | while read -r source; do [ -d "$mirror/registry.terraform.io/$source" ] || echo "$source"; done)
  if [ -n "$missing" ]; then
    echo "-- $module: skipped, not in the provider mirror: $(echo $missing)" >&2
    continue
  fi
  echo "-- $module (providers from $mirror)" >&2
  (
    cd "$module"
    export TF_CLI_CONFIG_FILE="$work/terraformrc-mirror"
    # The provider goes under target/, never into the module directory,
    # where checkov would walk its files.
    export TF_DATA_DIR="$work/tf-data/$(basename "$module")"
    terraform init -backend=false -input=false -no-color >/dev/null
    terraform validate -no-color
    if [ -d tests ]; then terraform test -no-color; fi
  ) || fail "terraform validate/test (mocked providers) in $module"
  mocked=$((mocked + 1))
done
if [ "$mocked" -eq 0 ]; then
  echo "-- no module with providers could be checked: $mirror has none of their providers" >&2
fi

step "checkov terraform (offline)"
[ -z "$(skips_without_reason)" ] || fail "checkov skips without a reason: $(skips_without_reason)"
checkov_offline terraform -d terraform --framework terraform || fail "checkov found failing terraform checks"

step "kubectl kustomize (every overlay; the primary's holds the migrate Jobs)"
overlays=()
for overlay in k8s/overlays/*/; do
  overlay=${overlay%/}
  overlays+=("$overlay")
  kubectl kustomize "$overlay" >"$work/rendered/$(basename "$overlay").yaml" || fail "kustomize $overlay"
done
[ "${#overlays[@]}" -ge 3 ] || fail "expected at least three region overlays"
echo "rendered: ${overlays[*]}" >&2

step "kubernetes-validate --strict (Kubernetes $K8S_VERSION)"
python deploy-tests/validate_manifests.py "$K8S_VERSION" "$work"/rendered/*.yaml || fail "manifest validation"

step "checkov kubernetes (rendered manifests, offline)"
checkov_offline kubernetes -d "$work/rendered" --framework kubernetes || fail "checkov found failing kubernetes checks"

step "promtool check + test rules"
promtool check rules monitoring/rules.yaml || fail "promtool check rules"
(cd monitoring/tests && promtool test rules ./*.yaml) || fail "promtool test rules"

step "PrometheusRule (k8s/base/monitoring) matches monitoring/rules.yaml"
python deploy-tests/prometheusrule.py check || fail "PrometheusRule out of date"

step "grafana dashboard"
python deploy-tests/check_dashboard.py monitoring/grafana-dashboard.json || fail "dashboard"

# The rendered controller configuration is one the controller accepts (its
# own validation, every field), when the test build's binary is there.
step "failover-controller check-config (k8s/base/failover-controller/config.toml)"
controller_bin=target/debug/failover-controller
if [ -x "$controller_bin" ]; then
  for region in $(ls k8s/overlays); do
    FAILOVER_REGION=$region FAILOVER_DATABASE_URL=postgres://check@127.0.0.1:9/check \
      FAILOVER_DATABASE_RUNTIME_ROLE=failover_controller \
      "$controller_bin" --config k8s/base/failover-controller/config.toml check-config >/dev/null \
      || fail "the controller refuses k8s/base/failover-controller/config.toml for region $region"
  done
  echo "accepted for every region" >&2
else
  echo "skipped: $controller_bin not built (scripts/test.sh builds it first)" >&2
fi

step "consistency (terraform, k8s, binaries)"
python deploy-tests/consistency.py "$work/rendered" || fail "consistency"

step_finish
echo "check-deploy: all deployment checks passed in $SECONDS s" >&2
