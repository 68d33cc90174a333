"""``dxai run``: the streaming daemon, Kafka (production) or embedded mode."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from dxai.configs.schema import load_config
from dxai.daemon.app import run_daemon
from dxai.observability.logging import configure_logging

# a temporary file older than this is a killed daemon's leftover (see use_private_tmp)
STALE_TMP_S = 24 * 3600.0


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
    use_private_tmp(Path(config.state.data_dir))
    asyncio.run(run_daemon(config))
    return 0


def use_private_tmp(data_dir: Path) -> Path | None:
    """Put this process's temporary files under ``<data_dir>/tmp`` unless ``TMPDIR`` names a
    folder: instances received by C-STORE are written there while they arrive (possibly many
    and large at once), and a container's ``/tmp`` is often small (the Helm chart's is a 1 GiB
    emptyDir) or memory.  Files a killed daemon left there a day ago or more are removed (no
    transfer lasts that long; another daemon on the same data dir may be receiving now).  The
    folder, or None when ``TMPDIR`` decides."""
    if os.environ.get("TMPDIR"):
        return None
    folder = data_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stale = time.time() - STALE_TMP_S
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_mtime < stale:
                path.unlink()
    tempfile.tempdir = str(folder)
    return folder
