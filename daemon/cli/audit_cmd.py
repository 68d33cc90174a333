"""``dxai audit``: verify the hash-chained audit log, or export it as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dxai.configs.schema import load_config
from dxai.daemon.audit import FILE_NAME, read_records, verify_log


def register(sub: Any) -> None:
    """Add the ``audit`` command with its ``verify`` and ``export`` actions."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "audit", help="verify or export the hash-chained audit log"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "verify", help="exit 0 when the chain is intact, 1 naming the first bad record"
    )
    export = actions.add_parser("export", help="write every record as one JSON object per line")
    export.add_argument("--out", default="-", help="output file (default: standard output)")
    for action in (check, export):
        action.add_argument("--data-dir", default=None, help="the daemon's state.data_dir")
        action.add_argument("--config", default=None, help="YAML configuration (its data dir)")
    check.set_defaults(func=_verify)
    export.set_defaults(func=_export)


def _log_path(args: argparse.Namespace) -> Path:
    data_dir = args.data_dir or load_config(args.config).state.data_dir
    return Path(data_dir) / FILE_NAME


def _verify(args: argparse.Namespace) -> int:
    result = verify_log(_log_path(args))
    if result.ok:
        print(f"audit: chain intact: {result.records} records, head {result.head}")
        return 0
    print(
        f"audit: chain BROKEN at record {result.bad_seq} "
        f"(after {result.records} good records): {result.problem}",
        file=sys.stderr,
    )
    return 1


def _export(args: argparse.Namespace) -> int:
    lines = [json.dumps(r.as_dict(), sort_keys=True) for r in read_records(_log_path(args))]
    text = "".join(line + "\n" for line in lines)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    print(f"audit: {len(lines)} records exported", file=sys.stderr)
    return 0
