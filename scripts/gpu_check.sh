#!/usr/bin/env bash
# The one prepared command for a lent GPU node: prints bench/gpu_check.py's JSON.
# Works with the repo's .venv (editable install) or any python with the deps installed: dxai is
# made importable through a throw-away symlink tree, so no install step is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/dxai"
for d in daemon actors batching engines observability configs; do
  ln -s "$PWD/$d" "$tree/dxai/$d"
done
export PYTHONPATH="$tree${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 280 "$PY" bench/gpu_check.py "$@"
