"""``dxai demo``: run the embedded daemon in-process, C-STORE a study to it, report the outcome."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import anyio.to_thread
import pydicom
import yaml
from pydicom.errors import InvalidDicomError as PydicomInvalid

from dxai.daemon.config.root import DxaiConfig
from dxai.daemon.config.services import DimseEndpoint
from dxai.daemon.errors import ServiceUnavailableError
from dxai.daemon.gateways.dimse import c_store_blocking
from dxai.daemon.intake.app import DaemonHandle, run_daemon
from dxai.daemon.jobs import JobStore
from dxai.observability.metrics import Sensor


@dataclass
class DemoReport:
    """What the demo saw: what was sent, and one summary per finished job."""

    data_dir: Path
    sent: int = 0
    refused: int = 0
    studies: int = 0
    jobs: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False


def demo_config(data_dir: Path, quiet_s: float, base: Path | None = None) -> DxaiConfig:
    """The embedded configuration (``base`` or the packaged local.yaml) on free local ports."""
    if base is not None:
        data = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
    else:
        text = resources.files("dxai.configs").joinpath("local.yaml").read_text("utf-8")
        data = yaml.safe_load(text) or {}
    data["mode"] = "embedded"
    data.setdefault("state", {})["data_dir"] = str(data_dir)
    emb = data.setdefault("embedded", {})
    emb.update(dicom_port=0, http_port=0, mllp_port=0, study_quiet_period_s=quiet_s)
    emb["bind_host"] = "127.0.0.1"
    data["metrics"] = {"enabled": False}
    return DxaiConfig.model_validate(data)


def read_study_files(folder: Path) -> tuple[list[bytes], set[str]]:
    """Every DICOM file under ``folder`` (bytes) and the Study Instance UIDs seen (blocking)."""
    files: list[bytes] = []
    studies: set[str] = set()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        except (PydicomInvalid, OSError, ValueError, EOFError):
            continue
        files.append(raw)
        studies.add(str(ds.StudyInstanceUID))
    return files, studies


def sample_study(data_dir: Path, given: Path | None) -> Path:
    """The study folder to send: ``given``, ./tests/data/sample-study, or a synthetic one."""
    if given is not None:
        return given
    local = Path("tests/data/sample-study")
    if local.is_dir():
        return local
    from dxai.daemon.synth import generate_corpus

    out = data_dir / "sample-study"
    generate_corpus(out, seed=1, studies=1, small=True)
    return out
