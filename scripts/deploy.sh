#!/usr/bin/env bash
# Applies the Kubernetes side of a deployment to every region's EKS
# cluster, primary region first, from Terraform's outputs and the image
# digests of the release (docs/deploy.md, step 6). Run it after `terraform
# apply` (which wrote the controller's configuration, the overlays'
# params.env, the migrate Jobs' settings and the database CA into k8s/).
#
#   scripts/deploy.sh IMAGES_ENV
#
# IMAGES_ENV is the file `scripts/images.sh --release PREFIX --push` wrote
# (target/images/digests.env): SERVICE_IMAGE=<repo>@sha256:...,
# FAILOVER_CONTROLLER_IMAGE=<repo>@sha256:....
#
# Per region: kubeconfig context geo-<region>; the Prometheus Operator
# CRDs when missing; the AWS Load Balancer
# Controller (Helm, with its IRSA role); namespace geo; the Secrets (the
# four database URLs from `terraform output database_urls`, an admin token
# made once and kept); the overlay pinned to the image digests; `kubectl
# apply -k`; in the primary region, the migrate Jobs waited for; every
# rollout waited for. Idempotent: run it again for the next release.
#
# Needs: aws, kubectl, kustomize, helm, jq, terraform, openssl. Installs
# the Prometheus Operator's CRDs (ServiceMonitor) where they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 1 ] || { echo "usage: $0 IMAGES_ENV (from scripts/images.sh --release PREFIX --push)" >&2; exit 2; }
# shellcheck disable=SC1090
source "$1"
: "${SERVICE_IMAGE:?IMAGES_ENV must set SERVICE_IMAGE=<repository>@sha256:<digest>}"
: "${FAILOVER_CONTROLLER_IMAGE:?IMAGES_ENV must set FAILOVER_CONTROLLER_IMAGE=<repository>@sha256:<digest>}"
for image in "$SERVICE_IMAGE" "$FAILOVER_CONTROLLER_IMAGE"; do
  [[ $image == *@sha256:* ]] || { echo "deploy.sh: $image is not pinned by digest" >&2; exit 2; }
done
for tool in aws kubectl kustomize helm jq terraform openssl; do
  command -v "$tool" >/dev/null || { echo "deploy.sh: $tool is not installed" >&2; exit 2; }
done

env_dir=terraform/environments/example
namespace=geo
clusters=$(terraform -chdir="$env_dir" output -json clusters)
database_urls=$(terraform -chdir="$env_dir" output -json database_urls)
# Primary first: its migrate Jobs create the schema the others wait for.
regions=$(jq -r 'to_entries | sort_by(.value.primary | not) | .[].key' <<<"$clusters")

url() { jq -r --arg user "$1" --arg region "$2" '.[$user][$region]' <<<"$database_urls"; }

# Creates or updates a Secret from KEY=VALUE pairs without printing them:
# the values go through files in a private directory, never onto a command
# line (where ps would show a database password).
apply_secret() {
  local name=$1 pair dir
  shift
  dir=$(mktemp -d)
  chmod 700 "$dir"
  local files=()
  for pair in "$@"; do
    printf '%s' "${pair#*=}" >"$dir/${pair%%=*}"
    files+=("--from-file=${pair%%=*}=$dir/${pair%%=*}")
  done
  kubectl -n "$namespace" create secret generic "$name" "${files[@]}" --dry-run=client -o yaml \
    | kubectl apply -f - >/dev/null
  rm -rf "$dir"
}

for region in $regions; do
  cluster=$(jq -r --arg r "$region" '.[$r].cluster_name' <<<"$clusters")
  primary=$(jq -r --arg r "$region" '.[$r].primary' <<<"$clusters")
  context="geo-$region"
  echo "== $region (cluster $cluster, primary: $primary)" >&2
  aws eks update-kubeconfig --region "$region" --name "$cluster" --alias "$context" >/dev/null
  kubectl config use-context "$context" >/dev/null

  # The manifests hold ServiceMonitors: their CRDs come first (only the
  # CRDs; a cluster that runs the Prometheus Operator already has them).
  if ! kubectl get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
    helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null 2>&1 || true
    helm upgrade --install prometheus-operator-crds prometheus-community/prometheus-operator-crds \
      --namespace kube-system --wait >/dev/null
  fi
  helm repo add eks https://aws.github.io/eks-charts >/dev/null 2>&1 || true
  helm upgrade --install aws-load-balancer-controller eks/aws-load-balancer-controller \
    --namespace kube-system --wait \
    --set clusterName="$cluster" --set region="$region" \
    --set vpcId="$(jq -r --arg r "$region" '.[$r].vpc_id' <<<"$clusters")" \
    --set serviceAccount.annotations."eks\.amazonaws\.com/role-arn"="$(jq -r --arg r "$region" '.[$r].load_balancer_controller_role_arn' <<<"$clusters")" \
    >/dev/null

  kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  apply_secret service-database url="$(url service "$region")"
  # The migration users' credentials (admin on CockroachDB: docs/deploy.md)
  # only where the migrate Jobs run.
  if [ "$primary" = true ]; then
    apply_secret service-migrate-database url="$(url service_migrate "$region")"
    apply_secret failover-controller-migrate-database url="$(url failover_controller_migrate "$region")"
  else
    kubectl -n "$namespace" delete secret service-migrate-database failover-controller-migrate-database \
      --ignore-not-found >/dev/null
  fi
  # The admin token is made once per region and kept across releases.
  token=$(kubectl -n "$namespace" get secret failover-controller -o jsonpath='{.data.admin-token}' 2>/dev/null | base64 -d || true)
  [ -n "$token" ] || token=$(openssl rand -hex 32)
  apply_secret failover-controller \
    database-url="$(url failover_controller "$region")" \
    admin-token="$token"

  # Pins the overlay to the release's digests (commit the change with the
  # release, so git says what runs).
  (cd "k8s/overlays/$region" && kustomize edit set image \
    "service=$SERVICE_IMAGE" "failover-controller=$FAILOVER_CONTROLLER_IMAGE")

  if [ "$primary" = true ]; then
    # A Job's pod template is immutable: the previous release's go first
    # (Argo CD does this itself through BeforeHookCreation).
    kubectl -n "$namespace" delete job -l app.kubernetes.io/component=migrations --ignore-not-found >/dev/null
  fi
  kubectl apply -k "k8s/overlays/$region" >/dev/null
  if [ "$primary" = true ]; then
    kubectl -n "$namespace" wait --for=condition=complete --timeout=15m \
      job/service-migrate job/failover-controller-migrate
  fi
  kubectl -n "$namespace" rollout status deployment/service --timeout=15m
  kubectl -n "$namespace" rollout status deployment/failover-controller --timeout=5m
done
echo "deploy.sh: every region applied; the controllers create the latency records of $(terraform -chdir="$env_dir" output -raw service_url)" >&2
