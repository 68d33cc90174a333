"""The SR over real scanners' headers (the reference files the repository carries): it is built
and ``dciodvfy`` accepts it, or it fails as ``SrBuildError`` (never another exception); values
old scanners write (``15:18:59``, ``75Y``, an empty first Specific Character Set) are made valid."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import pytest
from inbound_helpers import study_view

from dxai.actors.inbound.qc import load_protocols, run_qc
from dxai.actors.inbound.sr import AlgorithmInfo, SrBuildError, build_sr, sr_uids_for
from dxai.configs.schema.clinical_out import SrConfig
from dxai.configs.schema.qc import QcConfig

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference" / "dicom"
FILES = sorted(REFERENCE.rglob("*.dcm"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_sr_of_a_real_file_is_valid_or_refused_cleanly(path: Path, tmp_path: Path) -> None:
    view = study_view([path.read_bytes()])
    qc = run_qc(view, QcConfig(), load_protocols())
    series_uid, sop_uid = sr_uids_for(path.name, uid_root="1.2.826.0.1.3680043.10.1137.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom warns about single-component names
        try:
            ds = build_sr(view, [qc], "routine", [AlgorithmInfo("dxai", "1")], SrConfig(),
                          series_uid=series_uid, sop_uid=sop_uid)  # fmt: skip
        except SrBuildError:
            return
    out = tmp_path / "sr.dcm"
    ds.save_as(out, enforce_file_format=True)
    said = subprocess.run(["dciodvfy", str(out)], capture_output=True, check=False)
    lines = said.stderr.decode("utf-8", "replace").splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, errors
