"""Totals of the real-file benchmark (``pixel_real``): per engine, and dxai against each peer.

Pure arithmetic over the per-file rows ``pixel_real`` scores; no OCR, no file access.

* ``recall``: texts legible before and no longer legible after / texts legible before, over
  every output (dxai's held ones too);
* ``recall_released``: the same over the outputs that would leave (dxai's held and failed ones
  do not; Presidio never holds, so all of its outputs leave).  A peer's crash (no output, or an
  output that does not decode) counts every text as still legible, as the synthetic mode counts
  a crash as nothing found; ``recall_files_not_crashed``: released recall without the files
  the engine crashed on (dxai: status ``failed``);
* ``held_by_reason``: dxai's holds per reason (a file held for two reasons counts under both);
  ``second_reader_phi`` is the independent Tesseract verify inside dxai.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from dxai.actors.pixels.second_reader import REASON as SECOND_READER

Row = dict[str, Any]


def recall(before: int, after: int) -> float | None:
    """Share of the ``before`` texts no longer legible (None without any)."""
    return round(1 - after / before, 4) if before else None


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean (0.0 of nothing)."""
    items = [float(v) for v in values]
    return sum(items) / len(items) if items else 0.0


def _sum(rows: Iterable[Row], key: str) -> int:
    return sum(int(row[key]) for row in rows)


def _released_after(rows: Iterable[Row]) -> int:
    return sum(row["legible_after"] for row in rows if row.get("released", True))


def dxai_totals(per_file: dict[str, Row]) -> dict[str, Any]:
    """dxai's totals (the keys the benchmark always had, then the per-engine ones)."""
    rows = list(per_file.values())
    seen, left = _sum(rows, "legible_before"), _sum(rows, "legible_after")
    reasons = Counter(r for row in rows for r in row["held_reasons"])
    not_crashed = [row for row in rows if not row["crashed"]]
    return {
        "files": len(rows),
        "texts_legible_before": seen,
        "texts_legible_after": left,
        "recall": recall(seen, left),
        "held": sum(row["status"] == "held" for row in rows),
        "lines_before": _sum(rows, "lines_before"),
        "lines_after": _sum(rows, "lines_after"),
        "s_per_instance": round(mean(row["s_per_instance"] for row in rows), 3),
        "held_by_reason": dict(sorted(reasons.items())),
        "held_by_second_reader_only": sum(row["held_reasons"] == [SECOND_READER] for row in rows),
        "crashed": len(rows) - len(not_crashed),
        "texts_legible_after_released": _released_after(rows),
        "recall_released": recall(seen, _released_after(rows)),
        "recall_files_not_crashed": _released_recall(not_crashed),
        "per_file": per_file,
    }


def peer_totals(per_file: dict[str, Row]) -> dict[str, Any]:
    """A peer engine's totals: every output leaves (no holds), crashes counted."""
    rows = list(per_file.values())
    seen, left = _sum(rows, "legible_before"), _sum(rows, "legible_after")
    return {
        "files": len(rows),
        "texts_legible_before": seen,
        "texts_legible_after": left,
        "recall": recall(seen, left),
        "held": 0,
        "crashed": sum(row["crashed"] for row in rows),
        "texts_legible_after_released": left,
        "recall_released": recall(seen, left),
        "recall_files_not_crashed": _released_recall([r for r in rows if not r["crashed"]]),
        "s_per_instance": round(mean(row["s_per_instance"] for row in rows), 3),
        "s_per_instance_with_io": round(mean(row["s_with_io"] for row in rows), 3),
        "per_file": per_file,
    }


def engines(dxai: dict[str, Any], peers: dict[str, dict[str, Row]]) -> dict[str, Any]:
    """Per engine totals: dxai's (its per_file stays at the top level), then each peer's."""
    mine = {key: value for key, value in dxai.items() if key != "per_file"}
    return {"dxai": mine, **{name: peer_totals(rows) for name, rows in peers.items()}}


def compare(dxai: dict[str, Row], peers: dict[str, dict[str, Row]]) -> dict[str, Any]:
    """dxai against each peer on the files the peer did not crash on (goal: dxai's s/instance
    at most the peer's) and released recall over all files."""
    return {name: _versus(dxai, rows) for name, rows in peers.items()}


def _versus(dxai: dict[str, Row], peer: dict[str, Row]) -> dict[str, Any]:
    ok = [name for name, row in peer.items() if not row["crashed"]]
    mine = mean(dxai[name]["s_per_instance"] for name in ok)
    theirs = mean(peer[name]["s_per_instance"] for name in ok)
    return {
        "files_peer_did_not_crash": len(ok),
        "dxai_s_per_instance": round(mine, 3),
        "peer_s_per_instance": round(theirs, 3),
        "time_ratio": round(mine / theirs, 3) if theirs else None,
        "dxai_time_at_most_peer": mine <= theirs if ok else None,
        "recall_released": {
            "dxai": _released_recall(dxai.values()),
            "peer": _released_recall(peer.values()),
        },
        "recall_released_files_peer_did_not_crash": {
            "dxai": _released_recall(dxai[name] for name in ok),
            "peer": _released_recall(peer[name] for name in ok),
        },
    }


def _released_recall(rows: Iterable[Row]) -> float | None:
    items = list(rows)
    return recall(_sum(items, "legible_before"), _released_after(items))
