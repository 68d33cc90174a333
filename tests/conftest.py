"""Shared pytest configuration: markers follow the folder a test lives in."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
SHARED_REFERENCE = REPO_ROOT.parent / "shared" / "reference"

_FOLDER_MARKERS = {
    "unit": pytest.mark.unit,
    "integration": pytest.mark.integration,
    "gpu": pytest.mark.gpu,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with the marker named by its folder (unit, integration, gpu)."""
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(TESTS_DIR)
        marker = _FOLDER_MARKERS.get(rel.parts[0])
        if marker is not None:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """The shared reference data folder (``../shared/reference``); fails loudly if absent."""
    if not SHARED_REFERENCE.is_dir():
        pytest.fail(f"shared reference data missing at {SHARED_REFERENCE}")
    return SHARED_REFERENCE
