"""scripts/gpu_check.sh exits cleanly with a clear JSON where no CUDA device is visible."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_reports_no_cuda_cleanly():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": str(REPO / ".venv/bin/python")}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report == {
        "status": "no_cuda",
        "cuda": False,
        "reason": "torch.cuda.is_available() is false",
    }
