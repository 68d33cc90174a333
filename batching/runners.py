"""Batch runners: what the dynamic batcher hands a ready batch to.

``EngineRunner`` runs it on an in-process engine in a thread pool; the Ray Serve client's
``ServeRunner`` (``ray_runner``) sends it to a deployment as one call.  A runner returns one
outcome per item, in order: the item's cropped output or its own ``DxaiError``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from dxai.batching.buckets import Bucket, FloatArray
from dxai.batching.execute import run_batch
from dxai.batching.subbatch import Outcome
from dxai.engines.base import Engine
from dxai.engines.spec import ModelSpec


class BatchRunner(ABC):
    """Runs one bucketed batch; used by ``DynamicBatcher``.

    ``deadlines`` are the items' event-loop deadlines (``loop.time()`` based).  ``run`` may
    raise for a whole-batch failure: when ``isolates_failures`` is False the batcher then
    retries the batch item by item so a bad item fails alone; when True (the runner already
    returns per-item errors) every item gets the mapped error.
    """

    isolates_failures: bool = False

    @property
    @abstractmethod
    def backend(self) -> str:
        """Short lower-case label of what runs the batch (a metric label)."""

    @property
    @abstractmethod
    def max_batch_size(self) -> int:
        """The largest batch ``run`` accepts."""

    def concurrency(self, configured: int) -> int:
        """How many batches may run at once, given ``max_concurrent_batches``."""
        return configured

    async def start(self, concurrency: int, name: str) -> None:  # noqa: B027 - optional hook
        """Acquire resources for ``concurrency`` batches at once; idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (running batches are not awaited); idempotent."""

    @abstractmethod
    async def run(
        self, arrays: Sequence[FloatArray], bucket: Bucket, deadlines: Sequence[float]
    ) -> list[Outcome]:
        """One outcome per item of ``arrays`` (all of ``bucket``)."""


class EngineRunner(BatchRunner):
    """Runs batches on an engine loaded in this process, in a thread pool."""

    def __init__(self, model: ModelSpec, engine: Engine) -> None:
        self._model = model
        self._engine = engine
        self._executor: ThreadPoolExecutor | None = None

    @property
    def backend(self) -> str:
        """The engine's backend (``onnxruntime``, ``torch``, ...)."""
        return self._engine.info.backend

    @property
    def max_batch_size(self) -> int:
        """The engine's own limit."""
        return self._engine.max_batch_size

    async def start(self, concurrency: int, name: str) -> None:
        """Create the thread pool (one thread per concurrent batch)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=concurrency, thread_name_prefix=f"dxai-batch-{name}"
            )

    async def close(self) -> None:
        """Shut the pool down without waiting; queued work is cancelled."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def run(
        self, arrays: Sequence[FloatArray], bucket: Bucket, deadlines: Sequence[float]
    ) -> list[Outcome]:
        """Pad, run and crop in the pool; raises if the engine fails on the batch."""
        del deadlines
        loop = asyncio.get_running_loop()
        outputs = await loop.run_in_executor(
            self._executor, run_batch, self._engine, self._model, arrays, bucket
        )
        return list(outputs)
