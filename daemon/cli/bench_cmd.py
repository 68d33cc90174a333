"""``dxai bench NAME``: run one benchmark script from the checkout's ``bench/`` folder.

The benchmarks are not part of the installed package (they compare dxai with peers that are
installed only for benchmarking); this command finds ``bench/NAME.py`` under ``--bench-dir``
(default: ``./bench``) and runs it with the current interpreter, passing the remaining arguments.
Each benchmark prints one JSON object and writes it under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from dxai.configs.errors import ConfigError


def register(sub: Any) -> None:
    """Add the ``bench`` command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "bench", help="run a benchmark from bench/ (JSON out)"
    )
    parser.add_argument("name", help="benchmark name, e.g. batching, deid_headers, pixel_phi, soak")
    parser.add_argument("--bench-dir", default="bench", help="folder holding the bench scripts")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    parser.set_defaults(func=_run)


def available(bench_dir: Path) -> list[str]:
    """Names of the benchmark scripts in ``bench_dir``."""
    return sorted(p.stem for p in bench_dir.glob("*.py") if not p.stem.startswith("_"))


def _run(args: argparse.Namespace) -> int:
    bench_dir = Path(args.bench_dir)
    script = bench_dir / f"{args.name}.py"
    if not script.is_file():
        names = ", ".join(available(bench_dir)) or "none found"
        raise ConfigError(f"no benchmark {args.name!r} in {bench_dir} (available: {names})")
    return subprocess.call([sys.executable, str(script), *args.args])
