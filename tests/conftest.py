"""Shared pytest configuration: markers follow the folder a test lives in."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
#: A byte-for-byte copy of the project's shared reference data (``../shared/reference``), carried
#: by the repository so that a fresh clone runs every test; provenance in its README.md and
#: dicom/MANIFEST.csv (source repository, path, commit, licence and sha256 of every file).
SHARED_REFERENCE = TESTS_DIR / "data" / "reference"

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
    """The reference data folder carried in ``tests/data/reference``; fails loudly if absent."""
    if not SHARED_REFERENCE.is_dir():
        pytest.fail(f"shared reference data missing at {SHARED_REFERENCE}")
    return SHARED_REFERENCE
