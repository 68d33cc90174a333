"""Fuzz target 1: malformed DICOM through ``InstancePipeline.process`` and ``dxai deid``.

Every input ends with a status and, unless it passed, a stable reason code; nothing raises; a
passed output is a readable Part 10 file that no longer carries the input's Study Instance UID;
the process's memory stays bounded.  ``dxai deid`` (``dxai.daemon.cli.main`` in-process, temporary
folders) reports every input file once, writes only what passed (or, pixel-held, under
``.held/``), and exits 0 or 1, never with an error.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicom_mutations import ROLES, Malformed, malformed_dicom
from fuzz_support import cases, finish, fuzz, guarded, target
from hypothesis import strategies as st

from dxai.actors.outbound import InstanceOutcome, InstancePipeline, build_pipeline
from dxai.actors.outbound.pixel_step import build_cpu_pixel_actor
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.cli import main as dxai_main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
STATUSES = {"passed", "held", "failed", "skipped"}
REPORT_STATUSES = {"ok", "held", "failed", "skipped"}
#: growth of this process's RSS over a whole target (every case's bytes are garbage after it)
RSS_GROWTH_MAX_MIB = 400.0
CASE_SECONDS_MAX = 120.0


def _config(tmp: Path, pixels: str) -> DxaiConfig:
    return DxaiConfig.model_validate(
        {"state": {"data_dir": str(tmp)}, "deid": {"pixels": pixels}, "metrics": {"enabled": False}}
    )


@pytest.fixture(scope="module")
def header_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstancePipeline]:
    """Header de-identification only (``deid.pixels: never``)."""
    pipeline, _key = build_pipeline(_config(tmp_path_factory.mktemp("never"), "never"))
    yield pipeline
    pipeline.close()


@pytest.fixture(scope="module")
def pixel_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstancePipeline]:
    """Header de-identification plus the CPU OCR redactor on every image (``always``)."""
    config = _config(tmp_path_factory.mktemp("always"), "always")
    actor = build_cpu_pixel_actor(config.deid.pixel_policy)
    assert actor is not None, "the CPU OCR redactor did not load (rapidocr models)"
    pipeline, _key = build_pipeline(config, actor)
    yield pipeline
    pipeline.close()


def case_study_uid(data: bytes) -> bytes | None:
    """The case's own Study Instance UID (placeholder role 7) as it appears in ``data``."""
    found = re.search(rb"2\.25\.%d[0-9]{34}" % ROLES["StudyInstanceUID"], data)
    return found.group(0) if found else None


def check_outcome(raw: bytes, out: InstanceOutcome) -> str:
    """The properties of one outcome; returns its status (plus reason) for the figures."""
    assert out.status in STATUSES, out.status
    if out.status != "passed":
        assert CODE.match(out.reason), f"no reason code: {out.reason!r}"
    if out.status == "passed":
        assert out.data is not None
        written = pydicom.dcmread(BytesIO(out.data))
        assert "SOPInstanceUID" in written
        original = case_study_uid(raw)
        assert original is None or original not in out.data, "the input's study UID left"
    return f"{out.status}:{out.reason}" if out.reason else out.status


def _process(pipeline: InstancePipeline, raw: bytes) -> str:
    started = time.monotonic()
    outcome = pipeline.process(raw)
    assert time.monotonic() - started < CASE_SECONDS_MAX, "one instance took too long"
    return check_outcome(raw, outcome)


def _run_target(name: str, pipeline: InstancePipeline, count: int) -> None:
    figures = target(name)

    def one(case: Malformed) -> None:
        guarded(figures, lambda: _process(pipeline, case.data))

    fuzz(count, malformed_dicom(), one)
    done = finish(name)
    growth = done.rss_end_mib - done.rss_start_mib
    assert growth < RSS_GROWTH_MAX_MIB, f"RSS grew {growth:.0f} MiB over {done.cases} cases"


def test_instance_pipeline_never_raises_headers_only(header_pipeline: InstancePipeline) -> None:
    _run_target("process.headers", header_pipeline, cases(150))


def test_instance_pipeline_never_raises_with_pixel_ocr(pixel_pipeline: InstancePipeline) -> None:
    _run_target("process.pixels", pixel_pipeline, cases(40, share=0.4))


# -- dxai deid -------------------------------------------------------------------------------


def _write_inputs(src: Path, files: list[Malformed]) -> list[str]:
    """Write the batch as ``src/<i % 3>/<i>.dcm`` (a tree, like a study); relative names."""
    names = []
    for index, case in enumerate(files):
        rel = Path(str(index % 3)) / f"{index}.dcm"
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(case.data)
        names.append(str(rel))
    return names


def check_cli_report(report: dict[str, Any], names: list[str], dst: Path, code: int) -> None:
    """Every input once, in the files or as non-DICOM; outputs only for what may be written."""
    entries = {entry["src"]: entry for entry in report["files"]}
    assert len(entries) == len(report["files"]), "a file reported twice"
    assert set(entries) | set(report["skipped_non_dicom"]) == set(names)
    assert not set(entries) & set(report["skipped_non_dicom"])
    for entry in entries.values():
        assert entry["status"] in REPORT_STATUSES
        if entry["status"] != "ok":
            assert CODE.match(entry["reason"]), entry
            assert entry["dst"] is None or "/.held/" in entry["dst"]
        else:
            assert entry["dst"] is not None and Path(entry["dst"]).is_file()
    bad = any(e["status"] in ("held", "failed") for e in entries.values())
    assert code == (1 if bad else 0)
    written = {p for p in dst.rglob("*.dcm")}
    wanted = {Path(e["dst"]) for e in entries.values() if e["dst"]}
    assert written == wanted, "a file was written that the report does not list"


def _cli_case(tmp: Path, number: int, files: list[Malformed], config: Path) -> str:
    run = tmp / f"run-{number}"
    src, dst, report_path = run / "src", run / "dst", run / "report.json"
    names = _write_inputs(src, files)
    argv = ["deid", str(src), str(dst), "--config", str(config), "--no-progress"]
    argv += ["--report", str(report_path)]
    code = dxai_main(argv)
    assert code in (0, 1), f"dxai deid exited {code}"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    check_cli_report(report, names, dst, code)
    per_file = target("dxai_deid.files")
    for entry in report["files"]:
        per_file.add(f"{entry['status']}:{entry['reason']}" if entry["reason"] else "ok")
    for _name in report["skipped_non_dicom"]:
        per_file.add("skipped_non_dicom")
    return f"exit{code}"


def test_dxai_deid_reports_every_file(tmp_path: Path) -> None:
    config = tmp_path / "dxai.yaml"
    data_dir = tmp_path / "state"
    config.write_text(
        json.dumps({"state": {"data_dir": str(data_dir)}, "deid": {"pixels": "never"}}),
        encoding="utf-8",
    )
    figures = target("dxai_deid")
    counter = iter(range(1_000_000))

    def one(files: list[Malformed]) -> None:
        number = next(counter)
        guarded(figures, lambda: _cli_case(tmp_path, number, files, config))

    fuzz(cases(10, share=0.05), st.lists(malformed_dicom(), min_size=1, max_size=8), one)
    finish("dxai_deid.files")
    done = finish("dxai_deid")
    assert done.rss_end_mib - done.rss_start_mib < RSS_GROWTH_MAX_MIB
