"""DCMTK (echoscu, storescu, findscu) against the real Orthancs, and dciodvfy through its parser."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from dxai.actors.validation import run_dciodvfy

LOCAL_AET = "DXAI"
TOOL_TIMEOUT_S = 60


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not on PATH: run `bash scripts/install_system.sh`")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool(args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )


def _write(ds: Dataset, folder: Path) -> Path:
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("which", ["orthanc_source", "orthanc_dest"])
def test_echoscu(which: str, request: pytest.FixtureRequest) -> None:
    orthanc = request.getfixturevalue(which)
    proc = _run(
        "echoscu", "-aet", LOCAL_AET, "-aec", orthanc.aet, orthanc.host, str(orthanc.dicom_port)
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.usefixtures("clean_orthanc")
def test_storescu_then_qido_and_findscu(
    orthanc_dest: Any, make_ct: Callable[[], Dataset], tmp_path: Path
) -> None:
    ds = make_ct()
    path = _write(ds, tmp_path)
    port = str(orthanc_dest.dicom_port)
    proc = _run(
        "storescu", "-aet", LOCAL_AET, "-aec", orthanc_dest.aet, orthanc_dest.host, port, str(path)
    )
    assert proc.returncode == 0, proc.stderr

    found = orthanc_dest.dicomweb().search_for_instances(
        study_instance_uid=ds.StudyInstanceUID, series_instance_uid=ds.SeriesInstanceUID
    )
    assert [i["00080018"]["Value"][0] for i in found] == [ds.SOPInstanceUID]

    out = tmp_path / "find"
    out.mkdir()
    proc = _run(
        "findscu", "-S", "-aet", LOCAL_AET, "-aec", orthanc_dest.aet,
        "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={ds.StudyInstanceUID}",
        "-k", "SeriesInstanceUID", "-k", "Modality",
        "-X", "-od", str(out), orthanc_dest.host, port,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    responses = [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    assert [(r.SeriesInstanceUID, r.Modality) for r in responses] == [(ds.SeriesInstanceUID, "CT")]


def test_dciodvfy_valid_ct(make_ct: Callable[[], Dataset], tmp_path: Path) -> None:
    report = run_dciodvfy(_write(make_ct(), tmp_path))
    assert report.iod == "CTImage"
    assert report.errors == []
    assert report.ok
    assert not report.crashed


def test_dciodvfy_reports_missing_type1(make_ct: Callable[[], Dataset], tmp_path: Path) -> None:
    ds = make_ct()
    before = run_dciodvfy(_write(ds, tmp_path))
    del ds.Modality  # Type 1 in the General Series module
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    after = run_dciodvfy(_write(ds, broken_dir))

    new_errors = after.error_kinds() - before.error_kinds()
    assert not after.ok
    assert any("Modality" in line for line in new_errors), after.errors


def test_dciodvfy_on_reference_files(shared_reference: Path) -> None:
    varied = shared_reference / "dicom" / "varied"
    bad = run_dciodvfy(varied / "pydicom-data__bad_sequence.dcm")
    assert bad.iod == "CTImage"
    assert len(bad.errors) > 10
    assert all("Error - " in line for line in bad.errors)
    assert all("Warning - " in line for line in bad.warnings)
    good = run_dciodvfy(varied / "pydicom__MR_small_implicit.dcm")
    assert (good.iod, good.errors, good.ok) == ("MRImage", [], True)
    assert good.warnings
