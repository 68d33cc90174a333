"""``dxai demo``: the embedded daemon end to end on one machine, in one command."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from dxai.daemon.cli.demo import DemoReport, demo_config, run_demo, sample_study
from dxai.observability.logging import configure_logging


def register(sub: Any) -> None:
    """Add the ``demo`` command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="start the embedded daemon, C-STORE a sample study to it, print what happened",
    )
    parser.add_argument("--study", type=Path, default=None, help="folder of DICOM files to send")
    parser.add_argument("--config", type=Path, default=None, help="embedded YAML (default local)")
    parser.add_argument("--data-dir", type=Path, default=None, help="state folder (default temp)")
    parser.add_argument("--quiet-period", type=float, default=1.0, help="study quiet period (s)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after (s)")
    parser.add_argument("--log-level", default="WARNING", help="log level (default WARNING)")
    parser.add_argument(
        "--workflow",
        choices=("outbound", "inbound"),
        default="outbound",
        help="outbound: de-identify a study sent by C-STORE (default); inbound: QC, triage, "
        "priors, SR and HL7 ORU on bundled synthetic studies",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="dxai-demo-"))
    if args.workflow == "inbound":
        return _run_inbound(args, data_dir.resolve())
    config = demo_config(data_dir.resolve(), args.quiet_period, args.config)
    study = sample_study(data_dir, args.study)
    print(f"dxai demo: sending {study} to the embedded daemon (data dir {data_dir})")
    report = asyncio.run(run_demo(config, study, args.timeout))
    _print(report)
    return 1 if report.timed_out or not report.jobs else 0


def _print(report: DemoReport) -> None:
    print(f"sent {report.sent} instances of {report.studies} studies by C-STORE")
    if report.refused:
        print(f"  {report.refused} instances refused by the landing zone")
    for job in report.jobs:
        reasons = ", ".join(job["reasons"])
        print(
            f"job {job['job']}: decision {job['decision']} ({reasons}); state {job['state']}; "
            f"{job['released']} released, {job['held']} held of {job['received']}"
        )
    results = report.data_dir / "results"
    print(f"de-identified instances: {results / 'instances'}")
    print(f"decision and results events: {results / 'decisions'}, {results / 'results'}")
    print(f"job store: {report.data_dir / 'dxai.sqlite3'}")
    if report.timed_out:
        print(f"timed out: {len(report.jobs)} of {report.studies} jobs finished")


def _run_inbound(args: argparse.Namespace, data_dir: Path) -> int:
    from dxai.daemon.cli.demo_inbound import print_inbound, run_inbound_demo

    report = asyncio.run(run_inbound_demo(data_dir, args.config, args.timeout))
    print_inbound(report)
    return 0 if report.results is not None else 1
