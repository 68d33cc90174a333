"""Arrows run down the house: an AST check of every import in every room.

The ground floor (``configs/``, ``dxai.configs``) imports no room; ``observability`` only the
ground floor; ``engines`` <- ``batching`` <- ``actors`` <- ``daemon`` each import only what is
below them (and observability).  Imports inside functions and ``TYPE_CHECKING`` blocks count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: room -> the dxai packages its modules may import (itself included).
ALLOWED: dict[str, frozenset[str]] = {
    "configs": frozenset({"configs"}),
    "observability": frozenset({"configs", "observability"}),
    "engines": frozenset({"configs", "observability", "engines"}),
    "batching": frozenset({"configs", "observability", "engines", "batching"}),
    "actors": frozenset({"configs", "observability", "engines", "batching", "actors"}),
    "tests/synth": frozenset({"configs", "synth"}),
}


def imported_rooms(source: str) -> set[str]:
    """The ``dxai.<room>`` packages a module's source imports, wherever the import stands."""
    rooms: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "dxai" and len(parts) > 1:
                rooms.add(parts[1])
    return rooms


def _violations(folder: str) -> list[str]:
    allowed = ALLOWED[folder]
    found = []
    for path in sorted((REPO / folder).rglob("*.py")):
        bad = imported_rooms(path.read_text(encoding="utf-8")) - allowed
        found.extend(f"{path.relative_to(REPO)} imports dxai.{room}" for room in sorted(bad))
    return found


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_room_imports_only_what_lies_below(folder: str) -> None:
    assert list((REPO / folder).rglob("*.py")), f"{folder} has no modules"
    assert _violations(folder) == []


def test_no_lower_room_reaches_the_daemon() -> None:
    assert all("daemon" not in allowed for allowed in ALLOWED.values())


def test_the_checker_sees_every_kind_of_import() -> None:
    source = (
        "import dxai.daemon.app\n"
        "from dxai.actors.outbound import x\n"
        "def f():\n    from dxai.batching import y\n"
        "if TYPE_CHECKING:\n    from dxai.engines.spec import Z\n"
        "from . import sibling\nimport numpy\n"
    )
    assert imported_rooms(source) == {"daemon", "actors", "batching", "engines"}
