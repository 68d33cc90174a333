#!/usr/bin/env bash
# Build helm and kubeconform from the Go module proxy and make kubeconform's schemas offline,
# cached across CI runs (CI clones the repository afresh each run, so the cache lives outside
# it, beside the Kafka jars: ${XDG_CACHE_HOME:-~/.cache}/dxai/k8s-tools, or $K8S_TOOLS_CACHE).
#
#   bash scripts/install_k8s_tools.sh          # build what is missing; print KEY=value lines
#   bash scripts/install_k8s_tools.sh --check  # print them, or exit 1 when something is missing
#
# Printed (stdout): HELM, KUBECONFORM, K8S_VERSION, K8S_SCHEMAS; progress goes to stderr.
# Schemas: kubeconform's default location (GitHub) is unreachable here.  The same facts ship in
# Go modules the proxy serves: k8s.io/kubernetes (api/openapi-spec/swagger.json), the
# prometheus-operator module (ServiceMonitor, PrometheusRule CRDs) and KubeRay's ray-operator
# module (RayService CRD).  `go mod download` fetches them; scripts/k8s_schemas.py writes the
# strict, self-contained JSON schemas kubeconform reads from disk.
# Integrity: sum.golang.org is unreachable too (GOSUMDB=off), so the h1: hash of every module
# fetched by name is pinned below and checked; their dependencies are checked by go against
# the go.sum those modules carry.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_MODULE=helm.sh/helm/v3
HELM_VERSION=v3.21.4
HELM_SUM="h1:T/GcIEXU/gNjJnkITlIZ3e9xqkZjhFTmISuStTZ6+Qg="
KUBECONFORM_MODULE=github.com/yannh/kubeconform
KUBECONFORM_VERSION=v0.8.0
KUBECONFORM_SUM="h1:loDYd3a3spjIFrauqW67CDKF55Oo9R6uvC8AvpVd4ug="
K8S_MODULE=k8s.io/kubernetes
K8S_VERSION=1.34.4
K8S_SUM="h1:Yy6R4QB8C9kJPp25GFqEvX5XQwY5qzKeqD0Xx6oAcmk="
PROMOP_MODULE=github.com/prometheus-operator/prometheus-operator
PROMOP_VERSION=v0.85.0
PROMOP_SUM="h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
KUBERAY_MODULE=github.com/ray-project/kuberay/ray-operator
KUBERAY_VERSION=v1.5.0
KUBERAY_SUM="h1:KCjCQ7PSsvs9Ke+90CZbbs498nuaIJ/JkXk4vd54EVg="

CACHE="${K8S_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dxai/k8s-tools}"
HELM="$CACHE/helm-$HELM_VERSION/helm"
KUBECONFORM="$CACHE/kubeconform-$KUBECONFORM_VERSION/kubeconform"
SCHEMAS="$CACHE/schemas-k8s$K8S_VERSION-promop$PROMOP_VERSION-kuberay$KUBERAY_VERSION"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
WORK="$CACHE/build"

say() { echo "install_k8s_tools: $*" >&2; }

print_env() {
  echo "HELM=$HELM"
  echo "KUBECONFORM=$KUBECONFORM"
  echo "K8S_VERSION=$K8S_VERSION"
  echo "K8S_SCHEMAS=$SCHEMAS"
}

complete() { [[ -x "$HELM" && -x "$KUBECONFORM" && -f "$SCHEMAS/.complete" ]]; }

if [[ "${1:-}" == "--check" ]]; then
  if complete; then print_env; exit 0; fi
  say "missing under $CACHE: run bash scripts/install_k8s_tools.sh"
  exit 1
fi
if complete; then say "cached under $CACHE"; print_env; exit 0; fi

[[ -x "$GO" ]] || { say "no Go toolchain (go, or GO=/path/to/go)"; exit 1; }
mkdir -p "$WORK"
# helm and kubeconform need Go >= 1.26; an older go (>= 1.21) fetches that toolchain itself,
# as the module golang.org/toolchain from the same proxy (GOTOOLCHAIN=auto)
export GOPROXY=https://proxy.golang.org GOSUMDB=off GOFLAGS=-mod=mod
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOMODCACHE="$WORK/gomod" GOCACHE="$WORK/gocache" CGO_ENABLED=0

# download MODULE VERSION SUM: fetch into the module cache, check the pinned hash, print Dir
download() {
  local json sum dir
  json="$("$GO" mod download -json "$1@$2")"
  sum="$(sed -n 's/^\t"Sum": "\(.*\)",$/\1/p' <<<"$json")"
  dir="$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$json")"
  if [[ "$sum" != "$3" ]]; then
    say "$1@$2: hash $sum is not the pinned $3"
    return 1
  fi
  echo "$dir"
}

# build MODULE VERSION SUM PACKAGE TARGET [LDFLAGS]
build() {
  local started=$SECONDS
  download "$1" "$2" "$3" >/dev/null
  mkdir -p "$WORK/bin"
  GOBIN="$WORK/bin" "$GO" install -trimpath -ldflags "-s -w ${6:-}" "$1/$4@$2"
  mkdir -p "$(dirname "$5")"
  mv "$WORK/bin/$(basename "$4")" "$5"
  say "built $(basename "$5") $2 in $((SECONDS - started)) s"
}

# what helm's Makefile sets: its version, and the Kubernetes version `helm template` and
# `helm lint` assume (the one the schemas describe)
k8s_minor="$(cut -d. -f2 <<<"$K8S_VERSION")"
HELM_LDFLAGS="-X $HELM_MODULE/internal/version.version=$HELM_VERSION"
for pkg in pkg/chartutil pkg/lint/rules; do
  HELM_LDFLAGS+=" -X $HELM_MODULE/$pkg.k8sVersionMajor=1 -X $HELM_MODULE/$pkg.k8sVersionMinor=$k8s_minor"
done
[[ -x "$HELM" ]] || build "$HELM_MODULE" "$HELM_VERSION" "$HELM_SUM" cmd/helm "$HELM" "$HELM_LDFLAGS"
[[ -x "$KUBECONFORM" ]] || build "$KUBECONFORM_MODULE" "$KUBECONFORM_VERSION" \
  "$KUBECONFORM_SUM" cmd/kubeconform "$KUBECONFORM"

if [[ ! -f "$SCHEMAS/.complete" ]]; then
  k8s="$(download "$K8S_MODULE" "v$K8S_VERSION" "$K8S_SUM")"
  promop="$(download "$PROMOP_MODULE" "$PROMOP_VERSION" "$PROMOP_SUM")"
  kuberay="$(download "$KUBERAY_MODULE" "$KUBERAY_VERSION" "$KUBERAY_SUM")"
  rm -rf "$SCHEMAS"
  python="${PYTHON:-.venv/bin/python}"
  [[ -x "$python" ]] || python=python3
  "$python" scripts/k8s_schemas.py --kubernetes-version "$K8S_VERSION" --out "$SCHEMAS" \
    --swagger "$k8s/api/openapi-spec/swagger.json" \
    --crd "$promop/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
    --crd "$promop/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" \
    --crd "$kuberay/config/crd/bases/ray.io_rayservices.yaml" >&2
  touch "$SCHEMAS/.complete"
fi

# the Go module and build caches are only needed to build: keep the cache small
"$GO" clean -modcache >/dev/null 2>&1 || true
rm -rf "$WORK"
complete
say "ready under $CACHE"
print_env
