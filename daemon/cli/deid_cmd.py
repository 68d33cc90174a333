"""``dxai deid SRC DST``: de-identify DICOM headers (PS3.15 Annex E) from a file or folder tree."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dxai.actors.deid import (
    Deidentifier,
    FileReport,
    ReidentificationStore,
    deidentify_file,
    load_or_create_key,
)
from dxai.actors.deid.fileio import is_probably_dicom
from dxai.configs.errors import ConfigError
from dxai.configs.schema import DxaiConfig, load_config


def register(sub: Any) -> None:
    """Add the ``deid`` command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "deid", help="de-identify DICOM headers (PS3.15 Annex E) from a file or folder tree"
    )
    parser.add_argument("src", type=Path, help="a DICOM file or a folder tree of DICOM files")
    parser.add_argument("dst", type=Path, help="output folder (same relative paths as SRC)")
    parser.add_argument("--profile", default=None, help="profile name (default: deid.profile)")
    parser.add_argument("--pixels", choices=("never", "auto", "always"), default="never")
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


def _deidentifier(cfg: DxaiConfig, args: argparse.Namespace) -> tuple[Deidentifier, str]:
    name = args.profile or cfg.deid.profile
    if name not in cfg.deid.profiles:
        raise ConfigError(f"unknown profile {name!r}; known: {sorted(cfg.deid.profiles)}")
    key_file = args.key_file or (Path(cfg.deid.key_file) if cfg.deid.key_file else None)
    key, key_path, created = load_or_create_key(key_file, Path(cfg.state.data_dir))
    if created:
        print(
            f"dxai deid: generated a new key at {key_path} (mode 0600); keep it safe",
            file=sys.stderr,
        )
    else:
        print(f"dxai deid: using key {key_path}", file=sys.stderr)
    profile = cfg.deid.profiles[name]
    return Deidentifier(
        profile, key, profile_name=name, date_shift_max_days=cfg.deid.date_shift_max_days
    ), name


def _progress(total: int, enabled: bool) -> Any:
    from rich.progress import Progress

    return Progress(disable=not enabled or total < 2, transient=True)


def _process(
    args: argparse.Namespace, deid: Deidentifier, store: ReidentificationStore | None
) -> tuple[list[FileReport], list[str]]:
    files = list(_inputs(args.src))
    reports: list[FileReport] = []
    skipped: list[str] = []
    with _progress(len(files), not args.no_progress) as progress:
        task = progress.add_task("de-identifying", total=len(files))
        for path, rel in files:
            if not is_probably_dicom(path):
                skipped.append(str(rel))
            else:
                reports.append(
                    deidentify_file(path, args.dst / rel, deid, label=str(rel), reid_store=store)
                )
            progress.advance(task)
    return reports, skipped


def _summary(
    reports: list[FileReport], skipped: list[str], profile: str, wall: float
) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for rep in reports:
        counts[rep.status] = counts.get(rep.status, 0) + 1
    return {
        "profile": profile,
        "instances": len(reports),
        "status_counts": counts,
        "skipped_non_dicom": skipped,
        "wall_s": round(wall, 3),
        "files": [r.as_dict() for r in reports],
    }


def _run(args: argparse.Namespace) -> int:
    if not args.src.exists():
        print(f"dxai deid: {args.src} does not exist", file=sys.stderr)
        return 2
    cfg = load_config(args.config)
    deid, profile = _deidentifier(cfg, args)
    store = None
    if cfg.deid.reidentification_map:
        store = ReidentificationStore(Path(cfg.state.data_dir) / cfg.state.sqlite_file)
    counts: dict[str, int] = {}
    start = time.perf_counter()
    try:
        reports, skipped = _process(args, deid, store)
    finally:
        if store is not None:
            store.close()
    if args.pixels != "never":
        pixel_reports = _pixels(args, cfg, reports)
    summary = _summary(reports, skipped, profile, time.perf_counter() - start)
    if args.pixels != "never":
        from dxai.actors.pixels import summarise

        summary["pixels"] = {**summarise(pixel_reports), "files": pixel_reports}
        counts["pixels_held"] = summary["pixels"]["held"]
    counts.update(summary["status_counts"])
    report_path = args.report or args.dst / "dxai-deid-report.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(
        f"dxai deid: {len(reports)} instance(s): {counts}; {len(skipped)} non-DICOM skipped; "
        f"report {report_path}"
    )
    return 1 if counts.get("failed", 0) or counts.get("held", 0) or counts.get("pixels_held") else 0


def _pixels(
    args: argparse.Namespace, cfg: DxaiConfig, reports: list[FileReport]
) -> list[dict[str, Any]]:
    """Burned-in PHI stage over the de-identified outputs (PHI values from the originals)."""
    from dxai.actors.pixels import PixelJob, PixelRedactor, redact_outputs

    policy = cfg.deid.pixel_policy
    jobs = [
        PixelJob(args.src if args.src.is_file() else args.src / r.src, Path(r.dst), r.src)
        for r in reports
        if r.status == "ok" and r.dst
    ]
    return redact_outputs(jobs, PixelRedactor(policy), args.pixels)
