"""Detector and recogniser adapters over an :class:`InferenceClient` (the runtime's batcher).

The pixel pipeline is synchronous CPU work and runs in a worker thread; these adapters submit
each detection image and each recognition crop as one item to the client on the daemon's event
loop (``asyncio.run_coroutine_threadsafe``) and wait in the worker thread, so the batcher can
group crops of this and other instances.  :func:`redact_dataset_async` wires it together.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import anyio
import numpy as np
from pydicom.dataset import Dataset

from dxai.actors.pixels.det import DetParams, det_params, finish_detection, prepare_detection
from dxai.actors.pixels.ocr import DET_NAME, REC_NAME, EngineDirectionClassifier, rec_charset
from dxai.actors.pixels.rec import ctc_decode, rec_preprocess
from dxai.actors.pixels.redactor import PixelRedactor
from dxai.actors.pixels.report import PixelReport
from dxai.actors.pixels.types import Box, Recognition, ScanRequest, UInt8Array
from dxai.batching.client import InferenceClient
from dxai.configs.errors import DeadlineExceededError
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.observability.metrics import Sensor

T = TypeVar("T")


WAIT_S = 300.0


class _LoopBridge:
    """Runs client coroutines on ``loop`` from a worker thread and waits for the results."""

    def __init__(self, client: InferenceClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop

    def wait(self, coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
        """Submit every coroutine at once (so they can share batches), then wait for all.

        Never call this on the loop's own thread (it would wait for itself).
        """
        futures = [asyncio.run_coroutine_threadsafe(c, self.loop) for c in coros]
        try:
            return [f.result(timeout=WAIT_S) for f in futures]
        except concurrent.futures.TimeoutError as exc:
            for future in futures:
                future.cancel()
            raise DeadlineExceededError("OCR inference did not answer in time") from exc


class InferenceTextDetector(_LoopBridge):
    """The PP-OCRv4 detector through ``client.infer("ppocr_det", chw)``; call from a thread."""

    def __init__(
        self,
        client: InferenceClient,
        loop: asyncio.AbstractEventLoop,
        params: DetParams | None = None,
        model: str = DET_NAME,
    ) -> None:
        super().__init__(client, loop)
        self.params, self.model = params or DetParams(), model

    def detect(self, image: UInt8Array) -> list[Box]:
        """Text line boxes in ``image`` pixel coordinates."""
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[UInt8Array]) -> list[list[Box]]:
        """Boxes of several images (frames, enhanced views) submitted together to be batched."""
        prepared = [prepare_detection(image, self.params) for image in images]
        outs = self.wait([self.client.infer(self.model, p.chw) for p in prepared])
        return [
            finish_detection(
                p, np.asarray(out, dtype=np.float32).reshape(out.shape[-2:]), self.params
            )
            for p, out in zip(prepared, outs, strict=True)
        ]


class InferenceTextRecognizer(_LoopBridge):
    """The PP-OCRv4 recogniser through ``client.infer("ppocr_rec", 3x48xW)``; from a thread.

    Vertical and upside-down crops come to it turned (``read_images``).  Its ``direction``
    classifier runs on this process's CPU engine: it sees only the few unsure crops, and a node
    need not serve ``ppocr_cls`` (``inference.models``).
    """

    def __init__(
        self, client: InferenceClient, loop: asyncio.AbstractEventLoop, model: str = REC_NAME
    ) -> None:
        super().__init__(client, loop)
        self.model, self.charset = model, rec_charset()
        self.cache_identity = f"client:{model}"
        self.direction = EngineDirectionClassifier()

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        """Read each crop; all crops go to the batcher together."""
        items = [rec_preprocess(c) for c in crops]
        outs = self.wait([self.client.infer(self.model, item) for item in items])
        return [
            ctc_decode(np.asarray(out, dtype=np.float32), self.charset, item.shape[2])
            for out, item in zip(outs, items, strict=True)
        ]


async def redact_dataset_async(
    ds: Dataset,
    phi_values: Sequence[str],
    request: ScanRequest,
    client: InferenceClient,
    policy: PixelPolicyConfig | None = None,
) -> PixelReport:
    """:meth:`PixelRedactor.redact_dataset` in a worker thread, models run by ``client``."""
    redactor = build_batched_redactor(
        policy or PixelPolicyConfig(), client, asyncio.get_running_loop()
    )
    return await anyio.to_thread.run_sync(redactor.redact_dataset, ds, phi_values, request)


def build_batched_redactor(
    policy: PixelPolicyConfig,
    client: InferenceClient,
    loop: asyncio.AbstractEventLoop,
    sensor: Sensor | None = None,
) -> PixelRedactor:
    """The redactor whose OCR models run through ``client`` on ``loop`` (call from a thread).

    Raises what loading the recogniser's charset raises (the caller holds instances then).
    """
    detector = InferenceTextDetector(client, loop, det_params(policy))
    recognizer = InferenceTextRecognizer(client, loop)
    return PixelRedactor(policy, detector, recognizer, sensor=sensor)
