"""``dxai synth OUT_DIR``: write a synthetic DICOM corpus with planted fake PHI and ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dxai.configs.errors import ConfigError
from dxai.observability.progress import cli_progress

if TYPE_CHECKING:
    from types import ModuleType


def _synth() -> ModuleType:
    """The corpus generator (``tests/synth``, installed as ``dxai.synth``), imported on use.

    An image that ships only the rooms (``Dockerfile.gpu``) has no generator; every other
    command still works there.
    """
    try:
        import dxai.synth
    except ImportError as exc:
        raise ConfigError("dxai synth: the corpus generator is not installed here") from exc
    return dxai.synth


def register(sub: Any) -> None:
    """Add the ``synth`` command."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "synth",
        help="generate synthetic DICOM studies with known fake PHI and a ground-truth JSON",
    )
    parser.add_argument("out_dir", type=Path, help="output folder (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--studies", type=int, default=2, help="fake patients; each gets one study per modality"
    )
    parser.add_argument("--small", action="store_true", help="tiny images and few frames")
    parser.add_argument(
        "--modalities",
        default=None,
        help="comma-separated subset of the generator's modalities (default: all of them)",
    )
    parser.add_argument(
        "--transfer-syntaxes",
        default=None,
        help="comma-separated subset of the generator's transfer syntaxes (or UIDs); default: all",
    )
    parser.set_defaults(func=_run)


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _run(args: argparse.Namespace) -> int:
    synth = _synth()
    modalities = [m.upper() for m in _split(args.modalities) or synth.DEFAULT_MODALITIES]
    with cli_progress() as progress:
        task = progress.add_task("synth", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        manifest = synth.generate_corpus(
            args.out_dir,
            seed=args.seed,
            studies=args.studies,
            modalities=modalities,
            transfer_syntaxes=_split(args.transfer_syntaxes),
            small=args.small,
            progress=report,
        )
    print(f"wrote {len(manifest.files)} files under {args.out_dir}")
    print(f"ground truth: {args.out_dir / synth.GROUND_TRUTH_NAME}")
    return 0
