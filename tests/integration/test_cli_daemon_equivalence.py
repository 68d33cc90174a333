"""``dxai deid`` and the daemon run one per-instance pipeline: byte-identical outputs.

Both get the shared reference files (40 ordinary files of many modalities and syntaxes, 13 with
burned-in text), the same key and the same configuration with ``deid.pixels: auto``: the CLI
through ``main(["deid", ...])``, the daemon in embedded mode with one event per study (local
source, folder destination), its OCR through the in-process batcher.  Every instance the CLI
released the daemon released with the same bytes, and nothing else; what one held the other
held.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pydicom
import yaml
from daemon_helpers import embedded

from dxai.configs.schema import load_config
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.cli import main

DEADLINE_S = 600.0
UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def _inputs(reference: Path, into: Path) -> Path:
    """The reference files an event can name: a study whose UID the event contract accepts."""
    src = into / "src"
    for name in ("varied", "burned_in"):
        shutil.copytree(
            reference / "dicom" / name, src / name, ignore=shutil.ignore_patterns("*.json")
        )
    for path in [p for p in src.rglob("*") if p.is_file()]:
        head = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if not UID.fullmatch(str(head.get("StudyInstanceUID", ""))):
            path.unlink()  # two files carry a hash where the study UID belongs
    return src


def _config_file(tmp: Path) -> Path:
    data: dict[str, Any] = {
        "mode": "embedded",
        "state": {"data_dir": str(tmp / "data")},
        "deid": {"pixels": "auto", "key_file": str(tmp / "deid.key")},
        "pipeline": {"decision_deadline_s": DEADLINE_S, "job_deadline_s": DEADLINE_S},
        "embedded": {"dicom_port": 0, "http_port": 0, "mllp_port": 0},
        "metrics": {"enabled": False},
        # the only folder the daemon's events may read (``_inputs`` copies the files there)
        "sources": {"reference": {"kind": "local", "root": str(tmp / "src")}},
    }
    (tmp / "deid.key").write_text("00" * 16 + "ab" * 16 + "\n", encoding="ascii")
    (tmp / "deid.key").chmod(0o600)
    path = tmp / "dxai.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _studies(src: Path) -> dict[str, list[Path]]:
    studies: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        head = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if "StudyInstanceUID" in head and "SOPInstanceUID" in head:
            studies[str(head.StudyInstanceUID)].append(path)
    return studies


def _by_sop(files: list[Path]) -> dict[str, set[bytes]]:
    out: dict[str, set[bytes]] = defaultdict(set)
    for path in files:
        data = path.read_bytes()
        out[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)].add(data)
    return out


async def _run_daemon(config: DxaiConfig, src: Path, studies: list[str]) -> None:
    async with embedded(config) as handle:
        for n, study in enumerate(studies):
            event = {
                "event_type": "study_received",
                "study_uid": study,
                "exchange_job_id": f"eq-{n}",
                "source": {"kind": "local", "path": str(src)},
                "destination": "research-partner",
            }
            admission = await handle.pipeline.submit(json.dumps(event).encode(), None, "test")
            assert admission == "accepted"
        end = time.monotonic() + DEADLINE_S
        while await handle.store.unfinished() or handle.pipeline.in_flight:
            assert time.monotonic() < end, "daemon jobs did not finish"
            await asyncio.sleep(0.2)


def _held(report: dict[str, Any]) -> int:
    return sum(1 for f in report["files"] if f["status"] == "held")


async def test_cli_and_daemon_give_identical_outputs(
    tmp_path: Path, shared_reference: Path
) -> None:
    src = _inputs(shared_reference, tmp_path)
    cfg_path = _config_file(tmp_path)
    config = load_config(str(cfg_path))
    cli_out = tmp_path / "cli"
    code = await asyncio.to_thread(
        main, ["deid", str(src), str(cli_out), "--config", str(cfg_path), "--no-progress"]
    )
    report = json.loads((cli_out / "dxai-deid-report.json").read_text())
    assert code == (1 if _held(report) else 0)
    studies = _studies(src)
    await _run_daemon(config, src, sorted(studies))

    cli_files = [p for p in cli_out.rglob("*.dcm") if ".held" not in p.parts]
    cli = _by_sop(cli_files)
    daemon = _by_sop(list((tmp_path / "data" / "results" / "instances").rglob("*.dcm")))
    assert cli and set(daemon) == set(cli)
    for sop, outputs in daemon.items():
        assert outputs <= cli[sop], f"daemon output of {sop} differs from the CLI's"
    results = [
        json.loads(p.read_text())
        for p in (tmp_path / "data" / "results" / "results").glob("*.json")
    ]
    assert len(results) == len(studies)
    assert sum(r["instances_held"] for r in results) == _held(report)
    assert report["pixels"]["instances_scanned"] > 0 and report["pixels"]["boxes_redacted"] > 0
