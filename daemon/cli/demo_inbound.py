"""``dxai demo --workflow inbound``: the inbound path on bundled synthetic studies.

A head CT with a slice missing arrives (a ``study_received`` event whose HL7 order says "acute
subdural hemorrhage"); its patient has two priors in a local archive folder, stored under
differently formatted names, next to a decoy patient of a similar name.  The embedded daemon
runs QC, priors, triage, routing and the summary, writes the TID 1500 SR under
``<data_dir>/results/sr/<job_key>/`` and the ORU^R01 to ``<data_dir>/results/hl7/``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import DaemonHandle, run_daemon
from dxai.daemon.cli.demo import demo_config
from dxai.observability.metrics import Sensor
from dxai.synth.inbound import InboundDemo, write_inbound_demo

ORDER = (
    "MSH|^~\\&|RIS|DEMO|DXAI|DEMO|20261207101000||ORM^O01|DEMO0001|P|2.5\r"
    "PID|1||{pid}^^^DEMO||MULLER^HANS||{dob}|M\r"
    "ORC|NW|DEMO0001\r"
    "OBR|1|DEMO0001||CTHEAD^CT HEAD^L|||||||||fall at home. acute subdural hemorrhage on"
    " the outside CT; no fracture on x-ray\r"
)


@dataclass
class InboundDemoReport:
    """The job's results event (None: it did not finish in time) and where the files are."""

    data_dir: Path
    demo: InboundDemo
    results: dict[str, Any] | None = None
    sr_files: list[Path] = field(default_factory=list)
    hl7_files: list[Path] = field(default_factory=list)


def inbound_demo_config(data_dir: Path, base: Path | None, demo: InboundDemo) -> DxaiConfig:
    """The embedded configuration with the inbound workflow on the demo's folders."""
    config = demo_config(data_dir, 1.0, base)
    data = config.model_dump(mode="json", exclude_unset=True)
    data["sources"] = {
        "incoming": {"kind": "local", "root": str(demo.incoming)},
        "archive": {"kind": "local", "root": str(demo.archive)},
    }
    inbound = data.setdefault("inbound", {})
    inbound["enabled"] = True
    inbound.setdefault("priors", {}).update(enabled=True, archive="archive")
    return DxaiConfig.model_validate(data)


def _event(demo: InboundDemo) -> bytes:
    patient = demo.patient
    return json.dumps(
        {
            "event_type": "study_received",
            "study_uid": demo.study_uid,
            "destination": "default",
            "exchange_job_id": "demo-inbound-1",
            "source": {
                "kind": "local",
                "name": "incoming",
                "path": str(demo.incoming / demo.study_uid),
            },
            "priority": "routine",
            "hl7": ORDER.format(pid=patient.patient_id, dob=patient.birth_date),
        }
    ).encode()


async def run_inbound_demo(
    data_dir: Path, base: Path | None, timeout_s: float
) -> InboundDemoReport:
    """Write the studies, start the daemon, submit the event, wait for its results, stop."""
    demo = await anyio.to_thread.run_sync(write_inbound_demo, data_dir / "inbound-demo")
    config = inbound_demo_config(data_dir, base, demo)
    report = InboundDemoReport(data_dir, demo)
    stop = asyncio.Event()
    ready: asyncio.Future[DaemonHandle] = asyncio.get_running_loop().create_future()
    daemon = asyncio.create_task(run_daemon(config, stop, Sensor(), ready=ready.set_result))
    try:
        waiting: set[asyncio.Future[Any]] = {ready, daemon}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            daemon.result()  # re-raises the daemon's startup error
        handle = ready.result()
        await handle.pipeline.submit(_event(demo), None, "http")
        report.results = await _results(handle.results, demo.study_uid, timeout_s)
    finally:
        stop.set()
        await daemon
    results = data_dir / "results"
    report.sr_files = sorted((results / "sr").rglob("*.dcm"))
    report.hl7_files = sorted((results / "hl7").glob("*.hl7"))
    return report


async def _results(folder: Path, study_uid: str, timeout_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in sorted((folder / "results").glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("study_uid") == study_uid:
                return dict(data)
        await asyncio.sleep(0.2)
    return None


def print_inbound(report: InboundDemoReport) -> None:
    """What a coordinator would look at: priority, findings, priors, where the outputs are."""
    demo, results = report.demo, report.results
    print(f"inbound demo: study {demo.study_uid} arrived (data dir {report.data_dir})")
    if results is None:
        print("timed out: the job did not finish")
        return
    inbound = results.get("inbound") or {}
    print(f"state {results['state']}; priority {str(inbound.get('priority', '?')).upper()}")
    for reason in inbound.get("priority_reasons", []):
        print(f"  because {reason}")
    print("findings:")
    for finding in inbound.get("findings", []):
        print(f"  [{finding['severity']}] {finding['code']}: {finding['message']}")
    print(f"priors found ({len(inbound.get('priors', []))}; decoy {demo.decoy_uid}):")
    for prior in inbound.get("priors", []):
        mark = "prior" if prior["study_uid"] in demo.prior_uids else "NOT A PRIOR"
        print(
            f"  #{prior['rank']} {prior['study_uid']} match {prior['match_score']:.2f} "
            f"relevance {prior['relevance']:.2f} ({mark})"
        )
    print(f"SR: {', '.join(map(str, report.sr_files)) or 'none'} (UIDs {results['sr_uids']})")
    print(f"HL7 ORU^R01: {', '.join(map(str, report.hl7_files)) or 'none'}")
    print("summary for the referrer:")
    for line in str(inbound.get("summary", "")).splitlines():
        print(f"  {line}")
