"""Chaos tests: private services for the run, the integration helpers, and the run's figures.

``tests/integration`` (``kafka_helpers``, ``deid_checks``) is put on ``sys.path``.  The
``private_services`` fixture starts a Kafka broker and two Orthancs of the run's own (own state
folder, own ports) and stops them at the end, also when the test fails; the shared services are
never touched.  At the end of the session the figures of the run are printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
if str(INTEGRATION) not in sys.path:
    sys.path.insert(0, str(INTEGRATION))

from chaos_run import FIGURES  # noqa: E402 - needs the path above
from chaos_services import PrivateServices  # noqa: E402


@pytest.fixture
def private_services(tmp_path: Path) -> Iterator[PrivateServices]:
    """A private broker and ``source`` / ``dest`` Orthancs, stopped at teardown."""
    services = PrivateServices(tmp_path / "services")
    try:
        services.start()
        yield services
    finally:
        services.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the chaos figures when a run happened."""
    if not FIGURES:
        return
    terminalreporter.section("chaos figures")
    brief = {k: v for k, v in FIGURES.items() if k not in ("plan", "timeline")}
    for line in json.dumps(brief, indent=1, default=str).splitlines():
        terminalreporter.write_line(line)
