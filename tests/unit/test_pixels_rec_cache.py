"""The recognition cache: identical crop pixels are read once, anything else is read."""

from __future__ import annotations

import numpy as np

from dxai.actors.pixels.rec_cache import CachingRecognizer, RecognitionCache, with_cache
from dxai.actors.pixels.redactor import PixelRedactor
from dxai.actors.pixels.types import Box, Recognition, UInt8Array
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.observability.metrics import Sensor


class Counting:
    """Reads every crop as its mean value; remembers how many crops it was given."""

    cache_identity = "test:counting"

    def __init__(self) -> None:
        self.read = 0

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        self.read += len(crops)
        return [Recognition(f"v{int(c.mean())}", 0.9) for c in crops]


def _crop(value: int, width: int = 20) -> UInt8Array:
    return np.full((10, width, 3), value, dtype=np.uint8)


def test_identical_pixels_are_read_once_and_counted() -> None:
    inner, sensor = Counting(), Sensor()
    reader = CachingRecognizer(inner, RecognitionCache(16), sensor)
    first = reader.recognize([_crop(1), _crop(2)])
    again = reader.recognize([_crop(2), _crop(3), _crop(1)])
    assert [r.text for r in first] == ["v1", "v2"]
    assert [r.text for r in again] == ["v2", "v3", "v1"]
    assert inner.read == 3
    hits = sensor.registry.get_sample_value("dxai_ocr_cache_lookups_total", {"result": "hit"})
    assert hits == 2.0


def test_shape_is_part_of_the_key_and_lru_evicts() -> None:
    inner = Counting()
    reader = CachingRecognizer(inner, RecognitionCache(2), Sensor())
    reader.recognize([_crop(5, 20), _crop(5, 21)])  # same bytes per pixel, other shape
    assert inner.read == 2
    reader.recognize([_crop(6)])  # evicts the oldest (5, width 20)
    reader.recognize([_crop(5, 20)])
    assert inner.read == 4


def test_recognisers_without_identity_or_with_cache_off_are_not_wrapped() -> None:
    class Anonymous:
        def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
            return [Recognition("", 0.0) for _ in crops]

    anonymous = Anonymous()
    assert with_cache(anonymous, 100) is anonymous
    counting = Counting()
    assert with_cache(counting, 0) is counting
    assert isinstance(with_cache(counting, 100), CachingRecognizer)


def test_redactor_reads_a_repeated_overlay_once() -> None:
    class Detector:
        def detect(self, image: UInt8Array) -> list[Box]:
            return [Box(0, 0, 30, 10)]

    inner = Counting()
    policy = PixelPolicyConfig(rec_cache_entries=64, verify=False)
    image = np.zeros((10, 30, 3), dtype=np.uint8)
    image[2:8, 3:27] = 200
    for _ in range(3):  # three instances of a series with the same overlay
        redactor = PixelRedactor(policy, Detector(), inner)
        redactor.recognizer.recognize([image[0:10, 0:30]])
    assert inner.read == 1


def test_redactor_counts_cache_lookups_on_the_sensor_it_is_given() -> None:
    class Detector:
        def detect(self, image: UInt8Array) -> list[Box]:
            return []

    sensor = Sensor()
    policy = PixelPolicyConfig(rec_cache_entries=32, verify=False)
    redactor = PixelRedactor(policy, Detector(), Counting(), sensor=sensor)
    redactor.recognizer.recognize([_crop(41), _crop(41)])
    reg = sensor.registry
    assert reg.get_sample_value("dxai_ocr_cache_lookups_total", {"result": "miss"}) == 2.0
