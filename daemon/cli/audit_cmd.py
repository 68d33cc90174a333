"""``dxai audit``: inspect and verify the hash-chained audit log (not implemented yet, issue 6)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add the ``audit`` command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "audit", help="inspect and verify the hash-chained audit log"
    )
    parser.add_argument("--config", default=None, help="YAML configuration file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("dxai audit: not available yet in this version (tracked in issue 6)", file=sys.stderr)
    return 2
