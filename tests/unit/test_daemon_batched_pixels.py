"""The daemon's batched pixel actor: OCR from worker threads through a (fake) InferenceClient."""

from __future__ import annotations

import asyncio
import threading
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.pipeline.inference import batched_pixel_actor, open_inference
from dxai.observability.metrics import Sensor

CT = get_testdata_file("CT_small.dcm")
assert CT is not None


class ZeroClient:
    """Answers every item with zeros of its spatial size, recording the calling thread."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threads: set[int] = set()
        self.lock = threading.Lock()

    async def infer(self, model_name: str, item: Any, *, deadline_s: float | None = None) -> Any:
        with self.lock:
            self.calls.append(model_name)
            self.threads.add(threading.get_ident())
        return np.zeros((1, *item.shape[-2:]), dtype=np.float32)


def _config(tmp: Path, **extra: Any) -> DxaiConfig:
    return DxaiConfig.model_validate({"state": {"data_dir": str(tmp)}, **extra})


async def test_batched_actor_runs_ocr_on_the_loop_from_a_worker_thread() -> None:
    client = ZeroClient()
    loop = asyncio.get_running_loop()
    policy = PixelPolicyConfig()
    actor = await anyio.to_thread.run_sync(batched_pixel_actor, policy, client, loop)
    assert actor is not None
    ds = pydicom.dcmread(CT)
    report = await anyio.to_thread.run_sync(actor.redact_dataset, ds, ["DOE"], "always")
    assert client.calls and set(client.calls) == {"ppocr_det"}  # no text: nothing to read
    assert client.threads == {threading.get_ident()}  # infer ran on the loop's thread
    assert report.status == "clean" and report.text_regions == 0


async def test_no_inference_client_when_pixels_never(tmp_path: Path) -> None:
    config = _config(tmp_path, deid={"pixels": "never"})
    async with AsyncExitStack() as stack:
        assert await open_inference(config, Sensor(), stack) is None


async def test_unloadable_models_give_no_client_fail_closed(tmp_path: Path) -> None:
    bad = tmp_path / "models.yaml"
    bad.write_text("models: {}\n", encoding="utf-8")
    config = _config(tmp_path, inference={"models_file": str(bad), "models": ["ppocr_det"]})
    async with AsyncExitStack() as stack:
        assert await open_inference(config, Sensor(), stack) is None


class GateClient(ZeroClient):
    """Answers only once ``expected`` items are waiting: proves they were submitted together."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.waiting = 0
        self.all_in = asyncio.Event()

    async def infer(self, model_name: str, item: Any, *, deadline_s: float | None = None) -> Any:
        self.waiting += 1
        if self.waiting >= self.expected:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), timeout=10)
        out = np.zeros((1, *item.shape[-2:]), dtype=np.float32)
        out[0, 40:60, 40:200] = 0.9  # one text line on every image
        return out


async def test_detections_of_one_instance_are_submitted_together() -> None:
    from dxai.actors.pixels.inference import InferenceTextDetector

    images = [np.full((300, 320, 3), v, dtype=np.uint8) for v in (10, 60, 120)]
    client = GateClient(expected=len(images))
    detector = InferenceTextDetector(client, asyncio.get_running_loop())  # type: ignore[arg-type]
    together = await anyio.to_thread.run_sync(detector.detect_many, images)
    alone = GateClient(expected=1)
    single = InferenceTextDetector(alone, asyncio.get_running_loop())  # type: ignore[arg-type]
    one_by_one = [await anyio.to_thread.run_sync(single.detect, image) for image in images]
    assert together == one_by_one and all(len(boxes) == 1 for boxes in together)
