"""PS3.15 Table E.1-1 and Table E.3.10-1, compiled into fast lookups for one set of options.

The tables are package data (``dxai/actors/data``, provenance in ``SOURCES.md``).  A row's action
is the Basic Profile action unless an active option has a cell for that row; when several active
options have a cell, ``C`` (clean) wins over ``K`` (keep), because cleaning is the stricter choice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

#: Option name (as used in :class:`~dxai.configs.schema.deid.DeidProfile`) -> table column.
OPTION_COLUMNS: dict[str, str] = {
    "retain_safe_private": "rtnSafePrivOpt",
    "retain_uids": "rtnUIDsOpt",
    "retain_device_identity": "rtnDevIdOpt",
    "retain_institution_identity": "rtnInstIdOpt",
    "retain_patient_characteristics": "rtnPatCharsOpt",
    "retain_longitudinal_full_dates": "rtnLongFullDatesOpt",
    "retain_longitudinal_modified_dates": "rtnLongModifDatesOpt",
    "clean_descriptors": "cleanDescOpt",
    "clean_structured_content": "cleanStructContOpt",
    "clean_graphics": "cleanGraphOpt",
}

ACTION_CODES = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})
_PLAIN_TAG = re.compile(r"^\(([0-9A-F]{4}),([0-9A-F]{4})\)$")
_OPTION_PRIORITY = {"C": 0, "K": 1}


def _load_json(name: str) -> Any:
    data = resources.files("dxai.actors").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(data)


@cache
def table_rows() -> tuple[dict[str, str], ...]:
    """The 621 rows of Table E.1-1 as dictionaries (only non-empty cells present)."""
    rows = _load_json("ps3.15-table-e1-1.json")
    return tuple(dict(row) for row in rows)


@cache
def safe_private_rows() -> tuple[tuple[int, int, str], ...]:
    """Table E.3.10-1 as ``(group, element low byte, private creator)`` triples."""
    rows = _load_json("ps3.15-table-e3-10-1.json")["rows"]
    return tuple(
        (int(r["group"], 16), int(r["element_low_byte"], 16), str(r["private_creator"]).strip())
        for r in rows
    )


def row_action(row: dict[str, str], options: Iterable[str]) -> str:
    """The action code of one row under the given options (``C`` beats ``K``)."""
    chosen: str | None = None
    for option in options:
        cell = row.get(OPTION_COLUMNS[option])
        if cell is None:
            continue
        if chosen is None or _OPTION_PRIORITY.get(cell, 2) < _OPTION_PRIORITY.get(chosen, 2):
            chosen = cell
    return chosen if chosen is not None else row["basicProfile"]


@dataclass(frozen=True)
class CompiledTable:
    """Table E.1-1 resolved for one option set: plain tags plus the four pattern rows."""

    actions: dict[int, str]
    curve: str
    overlay_data: str
    overlay_comments: str
    private: str
    safe_private: frozenset[tuple[int, int, str]]

    def action_for(self, tag: int) -> str | None:
        """The action for a public tag that is not a curve or overlay, or None if unlisted."""
        return self.actions.get(tag)


@cache
def compile_table(options: frozenset[str]) -> CompiledTable:
    """Compile Table E.1-1 for ``options`` (cached: one compile per option set)."""
    unknown = options - OPTION_COLUMNS.keys()
    if unknown:
        raise ValueError(f"unknown de-identification options: {sorted(unknown)}")
    actions: dict[int, str] = {}
    patterns: dict[str, str] = {}
    for row in table_rows():
        action = row_action(row, sorted(options))
        match = _PLAIN_TAG.match(row["tag"])
        if match is None:
            patterns[row["id"]] = action
            continue
        actions[(int(match.group(1), 16) << 16) | int(match.group(2), 16)] = action
    safe = frozenset((group, low, creator.upper()) for group, low, creator in safe_private_rows())
    return CompiledTable(
        actions=actions,
        curve=patterns["50xxxxxx"],
        overlay_data=patterns["60xx3000"],
        overlay_comments=patterns["60xx4000"],
        private=patterns["ggggeeee-where-gggg-is-odd"],
        safe_private=safe,
    )
