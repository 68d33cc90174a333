#!/usr/bin/env bash
# Deployment artefacts, checked without a cluster or a Docker engine (ci.sh runs this):
#   - hadolint on Dockerfile.gpu (settings: .hadolint.yaml);
#   - helm lint --strict on deploy/helm/dxai, for the default values and each ci/*-values.yaml;
#   - helm template ... | kubeconform -strict against offline schemas (every kind validated,
#     the CRDs ServiceMonitor, PrometheusRule and RayService included; none skipped), after a
#     negative control: a manifest with an unknown field must be refused.
# helm, kubeconform and the schemas come from scripts/install_k8s_tools.sh (cached).
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT="${HADOLINT:-.venv/bin/hadolint}"
tools="$(bash scripts/install_k8s_tools.sh)"  # exits here when the tools cannot be built
eval "$tools"
CHART=deploy/helm/dxai
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "check_deploy: hadolint Dockerfile.gpu"
"$HADOLINT" --config .hadolint.yaml Dockerfile.gpu

kubeconform() {
  "$KUBECONFORM" -strict -summary -kubernetes-version "$K8S_VERSION" \
    -schema-location "$K8S_SCHEMAS/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$K8S_SCHEMAS/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
    "$@"
}

# negative control: strict schemas refuse an unknown field (else the checks below prove nothing)
cat >"$TMP/bad.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers: [{name: c, image: "x:1", notAField: true}]
EOF
if kubeconform "$TMP/bad.yaml" >"$TMP/bad.out" 2>&1; then
  cat "$TMP/bad.out"
  echo "check_deploy: kubeconform accepted an unknown field: the schemas are not strict" >&2
  exit 1
fi

value_files=("")
for file in "$CHART"/ci/*-values.yaml; do value_files+=("$file"); done
for values in "${value_files[@]}"; do
  label="${values:-default values}"
  args=()
  [[ -n "$values" ]] && args=(-f "$values")
  echo "check_deploy: helm lint --strict ($label)"
  "$HELM" lint "$CHART" --strict --kube-version "$K8S_VERSION" "${args[@]}"
  echo "check_deploy: helm template | kubeconform -strict ($label)"
  "$HELM" template dxai "$CHART" --namespace dxai --kube-version "$K8S_VERSION" "${args[@]}" \
    >"$TMP/rendered.yaml"
  kubeconform "$TMP/rendered.yaml"
  if grep -q "Skipped: [1-9]" <(kubeconform "$TMP/rendered.yaml"); then
    echo "check_deploy: kubeconform skipped a resource" >&2
    exit 1
  fi
done
echo "check_deploy: ok"
