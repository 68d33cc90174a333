"""The ``dxai`` command line: one module per subcommand, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dxai.configs.errors import DxaiError
from dxai.daemon.cli import (
    audit_cmd,
    bench_cmd,
    config_cmd,
    deid_cmd,
    demo_cmd,
    policy_cmd,
    review_cmd,
    run_cmd,
    synth_cmd,
)

_COMMANDS = (
    config_cmd,
    deid_cmd,
    demo_cmd,
    run_cmd,
    synth_cmd,
    audit_cmd,
    review_cmd,
    policy_cmd,
    bench_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="dxai",
        description="dicom-exchange-ai: AI middleware between DICOM exchange platforms and AI.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dxai`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except DxaiError as exc:
        print(f"dxai: error [{exc.code}]: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dxai: interrupted", file=sys.stderr)
        return 130
    return code


def entry() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())
