"""``dxai bench``: run the benchmarks under bench/ (not implemented yet, issue 4)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add the ``bench`` command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "bench", help="run the benchmarks under bench/"
    )
    parser.add_argument("--config", default=None, help="YAML configuration file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("dxai bench: not available yet in this version (tracked in issue 4)", file=sys.stderr)
    return 2
