"""``dxai run``: the streaming daemon, Kafka (production) or embedded mode."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from dxai.configs.schema import load_config
from dxai.daemon.app import run_daemon
from dxai.observability.logging import configure_logging


def register(sub: Any) -> None:
    """Add the ``run`` command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "run", help="run the streaming daemon (Kafka or embedded mode)"
    )
    parser.add_argument("--config", default=None, help="YAML configuration file")
    parser.add_argument("--log-level", default="INFO", help="log level (default INFO)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    config = load_config(args.config)
    asyncio.run(run_daemon(config))
    return 0
