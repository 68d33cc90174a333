"""Synthetic DICOM studies with planted fake PHI and a ground truth, for tests and benchmarks.

``generate_corpus(out_dir, seed=0, studies=2, modalities=..., transfer_syntaxes=None, small=False)``
writes ``out_dir/<study>/<series>/<instance>.dcm`` plus ``out_dir/ground_truth.json`` and returns
the :class:`CorpusManifest`.
"""

from __future__ import annotations

from dxai.synth.corpus import DEFAULT_MODALITIES, GROUND_TRUTH_NAME, generate_corpus
from dxai.synth.encode import TRANSFER_SYNTAXES, SynthError, resolve_transfer_syntax
from dxai.synth.manifest import BurnedInText, CorpusManifest, FileRecord
from dxai.synth.modalities import MODALITIES

__all__ = [
    "DEFAULT_MODALITIES",
    "GROUND_TRUTH_NAME",
    "MODALITIES",
    "TRANSFER_SYNTAXES",
    "BurnedInText",
    "CorpusManifest",
    "FileRecord",
    "SynthError",
    "generate_corpus",
    "resolve_transfer_syntax",
]
