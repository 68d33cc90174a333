"""Direct ONNX Runtime implementations of the detector and recogniser protocols.

The PP-OCRv4 models are the ones shipped inside the ``rapidocr_onnxruntime`` package, resolved
and sha256-checked through the model registry (``ppocr_det`` / ``ppocr_rec``); nothing is
downloaded.  Sessions are cached per process.  These classes are used where no
:class:`InferenceClient` is available (tests, the CLI); ``inference.py`` holds the batched
adapters.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from dxai.actors.pixels.det import DetParams, detect_boxes
from dxai.actors.pixels.rec import ctc_decode, load_charset, pad_batch, rec_preprocess
from dxai.actors.pixels.types import Box, FloatArray, Recognition, UInt8Array
from dxai.configs.errors import ModelIntegrityError
from dxai.engines.spec import ModelSpec

REC_BATCH = 16


DET_NAME = "ppocr_det"
REC_NAME = "ppocr_rec"


@lru_cache(maxsize=8)
def registered_spec(name: str) -> ModelSpec:
    """Registry entry ``name`` (the registry is read once per model per process)."""
    from dxai.engines import load_registry

    return load_registry().get(name)


@lru_cache(maxsize=8)
def registered_model(name: str) -> Path:
    """The verified file of registry model ``name`` (sha256 checked once per process)."""
    from dxai.engines import verify_model_file

    return verify_model_file(registered_spec(name))


@lru_cache(maxsize=4)
def _session(name: str, threads: int) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # input shapes change on nearly every call (image sizes, crop widths): a memory pattern
    # planned for one shape is rarely reused, and planning it costs ~8% of OCR time
    opts.enable_mem_pattern = False
    opts.log_severity_level = 3
    path = registered_model(name)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=1)
def rec_charset() -> list[str]:
    """The recogniser's CTC classes, read from the registered model's metadata."""
    return session_charset(_session(REC_NAME, 1))


def session_charset(session: Any) -> list[str]:
    """The CTC classes in the ``character`` metadata of a recogniser session."""
    meta = session.get_modelmeta().custom_metadata_map
    if "character" not in meta:
        raise ModelIntegrityError("ppocr_rec model has no character metadata")
    return load_charset(str(meta["character"]))


class OrtTextDetector:
    """PP-OCRv4 DB text detector run directly on ONNX Runtime (CPU)."""

    def __init__(self, params: DetParams | None = None, threads: int = 1) -> None:
        self.params = params or DetParams()
        self._session = _session(DET_NAME, threads)
        self._input = self._session.get_inputs()[0].name

    def run_prob(self, chw: FloatArray) -> FloatArray:
        """Probability map (H x W) for one pre-processed CHW image."""
        out = self._session.run(None, {self._input: chw[np.newaxis]})[0]
        return np.asarray(out[0, 0], dtype=np.float32)

    def detect(self, image: UInt8Array) -> list[Box]:
        """Text line boxes in ``image`` pixel coordinates."""
        return detect_boxes(image, self.params, self.run_prob)


class OrtTextRecognizer:
    """PP-OCRv4 CRNN/SVTR recogniser run directly on ONNX Runtime (CPU), CTC greedy decode."""

    def __init__(self, threads: int = 1) -> None:
        self._session = _session(REC_NAME, threads)
        self._input = self._session.get_inputs()[0].name
        self.charset = session_charset(self._session)
        self.cache_identity = f"onnxruntime:{REC_NAME}:{registered_spec(REC_NAME).sha256}"

    def run_batch(self, batch: FloatArray) -> FloatArray:
        """Softmax maps (N x T x C) for a padded batch."""
        return np.asarray(self._session.run(None, {self._input: batch})[0], dtype=np.float32)

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        """Read each crop; crops are batched by similar width to limit padding."""
        items = [rec_preprocess(c) for c in crops]
        results: list[Recognition] = [Recognition("", 0.0)] * len(items)
        for chunk in width_groups([item.shape[2] for item in items], REC_BATCH):
            probs = self.run_batch(pad_batch([items[i] for i in chunk]))
            for row, i in enumerate(chunk):
                results[i] = ctc_decode(probs[row], self.charset, items[i].shape[2])
        return results


def width_groups(widths: list[int], max_batch: int, max_ratio: float = 1.4) -> list[list[int]]:
    """Indices grouped into batches of similar width (sorted, at most ``max_batch`` each)."""
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    groups: list[list[int]] = []
    for i in order:
        last = groups[-1] if groups else None
        if last and len(last) < max_batch and widths[i] <= widths[last[0]] * max_ratio:
            last.append(i)
        else:
            groups.append([i])
    return groups
