"""``dxai config check FILE``: validate a configuration file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dxai.configs.errors import ConfigError
from dxai.configs.schema import load_config


def register(sub: Any) -> None:
    """Add the ``config`` command group."""
    parser: argparse.ArgumentParser = sub.add_parser("config", help="configuration tools")
    inner = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = inner.add_parser("check", help="validate a YAML config (with DXAI_* overrides)")
    check.add_argument("file", help="path to the YAML configuration")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: valid (mode={cfg.mode}, deid profile={cfg.deid.profile})")
    return 0
