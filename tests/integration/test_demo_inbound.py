"""``dxai demo --workflow inbound`` end to end: embedded mode, a local archive folder, outputs as
files (the SR under results/sr/<job_key>/, the ORU under results/hl7/)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import highdicom as hd
import hl7
import pydicom

from dxai.daemon.cli.demo_inbound import run_inbound_demo

TIMEOUT_S = 120.0


async def test_inbound_demo_finds_priors_and_writes_sr_and_oru(tmp_path: Path) -> None:
    report = await run_inbound_demo(tmp_path, None, TIMEOUT_S)
    results = report.results
    assert results is not None, "the demo job did not finish"
    inbound = results["inbound"]
    assert inbound["priority"] == "stat"
    assert any("hemorrhage" in r for r in inbound["priority_reasons"])
    ranked = [p["study_uid"] for p in inbound["priors"]]
    assert ranked == list(report.demo.prior_uids)  # the newer prior first, no decoy
    codes = {f["code"]: f["severity"] for f in inbound["findings"]}
    assert codes["qc.slice_gap"] == "blocking"
    assert results["state"] == "held_for_review"
    (sr_file,) = report.sr_files
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_file))
    assert sr.SOPInstanceUID == results["sr_uids"][0]
    assert sr.StudyInstanceUID == report.demo.study_uid
    assert not _dciodvfy_errors(sr_file)
    (oru_file,) = report.hl7_files
    text = oru_file.read_bytes().decode("utf-8")  # segments end in \r (no newline translation)
    message = hl7.parse(text)
    assert str(message.segment("MSH")[9]).startswith("ORU^R01")
    assert str(message.segment("OBR")[5]) == "S"  # STAT
    assert results["sr_uids"][0] in text


def _dciodvfy_errors(path: Path) -> list[str]:
    check = subprocess.run(["dciodvfy", str(path)], capture_output=True, check=False)
    said = check.stderr.decode("utf-8", "replace").splitlines()
    return [line for line in said if line.startswith("Error")]
