"""Fuzz tests: the shared integration helpers and Kafka fixtures, and the run's figures.

``tests/integration`` holds the in-process daemon helper and the Kafka fixtures; its folder is
put on ``sys.path`` (as pytest does for its own tests) and its ``kafka_bootstrap`` /
``kafka_topic`` fixtures are re-exported here, so the Kafka target uses the same per-test topics.
At the end of the session the figures of every target that ran are printed (and written to
``FUZZ_REPORT`` when set).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from fuzz_support import summary, write_report

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
if str(INTEGRATION) not in sys.path:
    sys.path.insert(0, str(INTEGRATION))


def _integration_fixtures() -> ModuleType:
    """``tests/integration/conftest.py`` loaded under a name of its own (not ``conftest``)."""
    spec = importlib.util.spec_from_file_location(
        "fuzz_integration_fixtures", INTEGRATION / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


_FIXTURES = _integration_fixtures()
kafka_bootstrap = _FIXTURES.kafka_bootstrap
kafka_topic = _FIXTURES.kafka_topic


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fuzz figures (cases, outcomes, crashes, peak RSS) when any target ran."""
    figures = summary()
    if not figures["targets"]:
        return
    terminalreporter.section("fuzz figures")
    terminalreporter.write_line(
        f"variant {figures['variant']}: {figures['total_cases']} cases, "
        f"{figures['total_crashes']} crashes, peak RSS {figures['peak_rss_mib']} MiB"
    )
    for name, item in figures["targets"].items():
        terminalreporter.write_line(
            f"  {name}: {item['cases']} cases, {item['crashes']} crashes, "
            f"RSS {item['rss_start_mib']} -> {item['rss_end_mib']} MiB, {item['outcomes']}"
        )
    path = write_report()
    if path is not None:
        terminalreporter.write_line(f"figures written to {path}")
