#!/usr/bin/env bash
# Regenerate tests/data/sample-study/: a small synthetic patient (fake PHI, non-ASCII name) with
# CT, MR, US (multi-frame RGB) and DX studies in explicit VR LE, plus JPEG baseline for US, and its
# ground_truth.json.  Deterministic: the same command writes the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
DXAI="${DXAI:-.venv/bin/dxai}"
[[ -x "$DXAI" ]] || DXAI=dxai
OUT=tests/data/sample-study
rm -rf "$OUT"
"$DXAI" synth "$OUT" --seed 1 --studies 1 --small \
  --modalities CT,MR,US,DX --transfer-syntaxes explicit,jpeg
du -sh "$OUT"
