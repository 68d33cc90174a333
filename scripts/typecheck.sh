#!/usr/bin/env bash
# mypy --strict on the dxai packages.  The packages live at the repository root and install as
# dxai.<name> through setuptools' package-dir mapping, which mypy cannot follow; a throw-away tree
# of symlinks (.typecheck/dxai/<name> -> ../../<name>) gives mypy the installed import names.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
rm -rf .typecheck && mkdir -p .typecheck/dxai
for d in daemon actors batching engines observability configs; do
  ln -sfn "../../$d" ".typecheck/dxai/$d"
done
ln -sfn "../../tests/synth" ".typecheck/dxai/synth"  # installed as dxai.synth (setup.py)
args=()
for d in daemon actors batching engines observability configs synth; do args+=(-p "dxai.$d"); done
MYPYPATH=.typecheck "$PY" -m mypy "${args[@]}" "$@"
