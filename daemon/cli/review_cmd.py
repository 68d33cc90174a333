"""``dxai review``: list and decide instances held for human review (not implemented yet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add the ``review`` command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "review", help="list and decide instances held for human review"
    )
    parser.add_argument("--config", default=None, help="YAML configuration file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("dxai review: not available yet in this version (tracked in issue 6)", file=sys.stderr)
    return 2
