"""``dxai synth`` (being written)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add the ``synth`` command."""
    parser: argparse.ArgumentParser = sub.add_parser("synth", help="synth (being written)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("dxai synth: not available yet", file=sys.stderr)
    return 2
