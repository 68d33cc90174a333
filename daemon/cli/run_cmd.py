"""``dxai run``: the streaming daemon, Kafka or embedded mode (not implemented yet, issue 6)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add the ``run`` command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "run", help="run the streaming daemon (Kafka or embedded mode)"
    )
    parser.add_argument("--config", default=None, help="YAML configuration file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("dxai run: not available yet in this version (tracked in issue 6)", file=sys.stderr)
    return 2
