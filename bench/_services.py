"""What the benchmarks that use the test services share: where they run, emptying an Orthanc,
and writing the one JSON result (stdout and bench/results/<name>.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / ".services"


def service(*parts: str) -> str:
    """A value the service scripts (scripts/services/up.sh) wrote under .services/."""
    return SERVICES.joinpath(*parts).read_text(encoding="utf-8").strip()


def orthanc_url(name: str) -> str:
    """The REST root of the test Orthanc ``name`` (source or dest)."""
    return f"http://127.0.0.1:{service('orthanc', name, 'http_port')}"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def orthancs_cpu_s() -> float:
    """CPU seconds both test Orthancs have used so far."""
    return sum(cpu_s(int(service("orthanc", name, "orthanc.pid"))) for name in ("source", "dest"))


def clear(base: str) -> None:
    """Delete every patient of the Orthanc at ``base``."""
    with httpx.Client(base_url=base, timeout=120) as http:
        for patient in http.get("/patients").raise_for_status().json():
            http.delete(f"/patients/{patient}").raise_for_status()


def save(name: str, result: dict[str, Any]) -> None:
    """Print ``result`` as JSON and write it to bench/results/``name``.json."""
    text = json.dumps(result, indent=1)
    path = REPO / "bench" / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    print(text)
