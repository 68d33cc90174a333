"""Shared pytest configuration: markers follow the folder a test lives in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
#: The reference data the repository carries: the files of the project's shared reference set
#: (``../shared/reference``) that have a clear licence, byte for byte; provenance in its README.md
#: and dicom/MANIFEST.csv (source repository, path, commit, licence and sha256 of every file).
SHARED_REFERENCE = TESTS_DIR / "data" / "reference"
#: Files without a licence to redistribute (the JSL burned-in set) stay outside the repository:
#: ``RESTRICTED_REFERENCE_DIR`` names the folder that holds them (``.ci/run`` passes
#: ``../shared/reference`` when it exists); without it the tests that read them are deselected.
RESTRICTED_ENV = "RESTRICTED_REFERENCE_DIR"

_FOLDER_MARKERS = {
    "unit": pytest.mark.unit,
    "integration": pytest.mark.integration,
    "gpu": pytest.mark.gpu,
    "fuzz": pytest.mark.fuzz,
    "chaos": pytest.mark.chaos,
}


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``chaos`` marker (``tests/chaos``: faults injected into a running daemon)."""
    config.addinivalue_line(
        "markers", "chaos: daemon under injected faults (short by default; CHAOS_KILLS=N long)"
    )


def restricted_reference() -> Path | None:
    """The folder of restricted reference files, when this run was given one."""
    value = os.environ.get(RESTRICTED_ENV, "")
    folder = Path(value) if value else None
    return folder if folder is not None and (folder / "dicom").is_dir() else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its folder (unit, integration, gpu, fuzz, chaos); deselect
    ``restricted`` tests when no restricted reference folder was given (one line says so)."""
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(TESTS_DIR)
        marker = _FOLDER_MARKERS.get(rel.parts[0])
        if marker is not None:
            item.add_marker(marker)
    if restricted_reference() is not None:
        return
    keep = [i for i in items if i.get_closest_marker("restricted") is None]
    dropped = [i for i in items if i.get_closest_marker("restricted") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        print(
            f"\n{len(dropped)} test(s) deselected: no restricted reference data ({RESTRICTED_ENV})"
        )


@pytest.fixture(scope="session")
def restricted_burned_in() -> Path:
    """The restricted burned-in files (JSL set); only ``restricted`` tests ask for it."""
    folder = restricted_reference()
    if folder is None:
        pytest.fail(f"{RESTRICTED_ENV} is not set to a reference folder")
    return folder / "dicom" / "burned_in"


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """The reference data folder carried in ``tests/data/reference``; fails loudly if absent."""
    if not SHARED_REFERENCE.is_dir():
        pytest.fail(f"shared reference data missing at {SHARED_REFERENCE}")
    return SHARED_REFERENCE
