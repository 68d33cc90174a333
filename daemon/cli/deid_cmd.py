"""``dxai deid SRC DST``: de-identify a file or folder tree through the daemon's own pipeline.

The same per-instance pipeline as the daemon (:mod:`dxai.actors.outbound`: header de-id, pixel
step with the scan policy, verify, encode), run series by series in a thread pool; outputs keep
their relative paths under DST, pixel-held ones go under ``DST/.held/``.  Exit 1 when any
instance was held or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from dxai.actors.deid.fileio import is_probably_dicom
from dxai.actors.outbound import (
    FileReport,
    InstanceOutcome,
    InstancePipeline,
    PipelineChoice,
    Tally,
    build_pipeline,
    file_report,
    read_member,
    run_series,
    write_outcome,
)
from dxai.actors.outbound.files import FILE_STATUS, held_path
from dxai.actors.outbound.series import series_groups
from dxai.actors.pixels.presence import Probe
from dxai.configs.schema import DxaiConfig, load_config
from dxai.daemon.pipeline.inference import open_pixel_actor
from dxai.observability.metrics import Sensor
from dxai.observability.progress import cli_progress


def register(sub: Any) -> None:
    """Add the ``deid`` command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "deid", help="de-identify DICOM headers (PS3.15 Annex E) from a file or folder tree"
    )
    parser.add_argument("src", type=Path, help="a DICOM file or a folder tree of DICOM files")
    parser.add_argument("dst", type=Path, help="output folder (same relative paths as SRC)")
    parser.add_argument("--profile", default=None, help="profile name (default: deid.profile)")
    parser.add_argument(
        "--pixels",
        choices=("never", "auto", "always"),
        default=None,
        help="burned-in pixel PHI step (default: deid.pixels of the config)",
    )
    parser.add_argument("--report", type=Path, default=None, help="JSON report file")
    parser.add_argument("--key-file", type=Path, default=None, help="secret key file")
    parser.add_argument("--config", default=None, help="YAML configuration file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


def _inputs(src: Path) -> Iterator[tuple[Path, Path]]:
    """(file, path relative to the output folder) for every file under ``src``."""
    if src.is_file():
        yield src, Path(src.name)
        return
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        yield path, path.relative_to(src)


@dataclasses.dataclass
class _Run:
    """One CLI run: inputs, where outputs go, the report entries and the tally as they come."""

    dst: Path
    files: list[tuple[Path, Path]]
    reports: dict[int, FileReport] = dataclasses.field(default_factory=dict)
    tally: Tally = dataclasses.field(default_factory=Tally)


async def _process(run: _Run, pipeline: InstancePipeline, workers: int, progress: Any) -> None:
    """Every series through :func:`run_series`, the CPU work in ``workers`` threads."""
    loop = asyncio.get_running_loop()
    task = progress.add_task("de-identifying", total=len(run.files))
    with ThreadPoolExecutor(workers, thread_name_prefix="dxai-deid") as pool:

        async def probe(call: Callable[[], Probe]) -> Probe:
            return await loop.run_in_executor(pool, call)

        reads = [loop.run_in_executor(pool, read_member, path) for path, _rel in run.files]
        members = list(await asyncio.gather(*reads))
        for numbers in series_groups(members):

            async def one(
                i: int, call: Callable[[], InstanceOutcome], numbers: list[int] = numbers
            ) -> InstanceOutcome:
                out = await loop.run_in_executor(pool, _one, run, numbers[i], call)
                run.tally.add(out)
                counts = {"held": run.tally.held, "failed": run.tally.failed}
                progress.update(task, advance=1, **counts)
                return out

            await run_series([members[i] for i in numbers], pipeline, one, probe)


def _one(run: _Run, number: int, call: Callable[[], InstanceOutcome]) -> InstanceOutcome:
    """Process one file, write what may be written, keep its report; return it without bytes."""
    started = time.perf_counter()
    outcome = call()
    _path, rel = run.files[number]
    dst = run.dst / rel
    written = write_outcome(outcome, dst, held_path(dst, run.dst))
    run.reports[number] = file_report(str(rel), outcome, written, time.perf_counter() - started)
    return dataclasses.replace(outcome, data=None)


def _summary(
    run: _Run, skipped: list[str], pipeline: InstancePipeline, wall: float
) -> dict[str, Any]:
    reports = [run.reports[i] for i in sorted(run.reports)]
    out: dict[str, Any] = {
        "profile": pipeline.info.profile,
        "pixel_mode": pipeline.info.pixel_mode,
        "instances": len(reports),
        "status_counts": {FILE_STATUS[k]: v for k, v in run.tally.status_counts().items()},
        "skipped_non_dicom": skipped,
        "wall_s": round(wall, 3),
        "files": [r.as_dict() for r in reports],
    }
    if pipeline.pixels is not None:
        out["pixels"] = run.tally.pixels.as_dict()
    return out


def _announce_key(path: Path, created: bool) -> None:
    if created:
        print(
            f"dxai deid: generated a new key at {path} (mode 0600); keep it safe", file=sys.stderr
        )
    else:
        print(f"dxai deid: using key {path}", file=sys.stderr)


def _config(args: argparse.Namespace) -> DxaiConfig:
    """The configuration with ``--pixels`` applied (validated like the file)."""
    cfg = load_config(args.config)
    if args.pixels is None:
        return cfg
    deid = cfg.deid.model_copy(update={"pixels": args.pixels})
    return DxaiConfig.model_validate({**cfg.model_dump(), "deid": deid.model_dump()})


async def _main(args: argparse.Namespace, cfg: DxaiConfig, run: _Run) -> InstancePipeline:
    """Open the pixel actor the daemon would (same client, same models), then process."""
    async with AsyncExitStack() as stack:
        actor = await open_pixel_actor(cfg, Sensor(), stack)
        choice = PipelineChoice(args.profile, args.key_file)
        build = functools.partial(build_pipeline, cfg, actor, choice=choice, cpu_fallback=False)
        pipeline, key = await asyncio.to_thread(build)
        _announce_key(key.path, key.created)
        try:
            enabled = not args.no_progress and len(run.files) > 1
            with cli_progress(enabled) as progress:
                await _process(run, pipeline, cfg.pipeline.cpu_workers, progress)
        finally:
            pipeline.close()
    return pipeline


def _run(args: argparse.Namespace) -> int:
    if not args.src.exists():
        print(f"dxai deid: {args.src} does not exist", file=sys.stderr)
        return 2
    cfg = _config(args)
    inputs = list(_inputs(args.src))
    run = _Run(args.dst, [(p, r) for p, r in inputs if is_probably_dicom(p)])
    skipped = [str(r) for p, r in inputs if not is_probably_dicom(p)]
    start = time.perf_counter()
    pipeline = asyncio.run(_main(args, cfg, run))
    summary = _summary(run, skipped, pipeline, time.perf_counter() - start)
    report_path = args.report or args.dst / "dxai-deid-report.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(
        f"dxai deid: {summary['instances']} instance(s): {summary['status_counts']}; "
        f"{len(skipped)} non-DICOM skipped; report {report_path}"
    )
    return 1 if run.tally.failed or run.tally.held else 0
