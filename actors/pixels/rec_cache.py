"""A recognition cache: the same crop pixels are read once per process.

Series and cine loops carry the same overlay (name, ID, date) on every instance, rendered into
identical pixels at the same place.  Reading a crop is a pure function of its pixels and the
model, so :class:`CachingRecognizer` keys results by a hash of the crop (shape and bytes) and
the recogniser's ``cache_identity`` (model and runtime), and runs the model only on crops it
has not seen.  Recognisers without a ``cache_identity`` are not cached.  The cache is a
bounded LRU held in memory only (its texts are PHI: never logged, gone with the process).
Lookups are counted in ``dxai_ocr_cache_lookups{result=hit|miss}``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from functools import lru_cache

from dxai.actors.pixels.orient import direction_of
from dxai.actors.pixels.types import (
    DirectionClassifier,
    Recognition,
    TextRecognizer,
    UInt8Array,
)
from dxai.observability.metrics import Sensor, default_sensor


class RecognitionCache:
    """A thread-safe LRU of recognitions by key."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[bytes, Recognition] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: bytes) -> Recognition | None:
        """The cached recognition, refreshed as most recent; None on a miss."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: bytes, value: Recognition) -> None:
        """Store a recognition, evicting the least recently used beyond ``max_entries``."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)


@lru_cache(maxsize=8)
def shared_cache(max_entries: int) -> RecognitionCache:
    """The process-wide cache of this size (one per size asked for)."""
    return RecognitionCache(max_entries)


def cache_identity(recognizer: object) -> str:
    """The recogniser's ``cache_identity`` ("" when it has none: then it is not cached)."""
    identity = getattr(recognizer, "cache_identity", "")
    return identity if isinstance(identity, str) else ""


def with_cache(
    recognizer: TextRecognizer, max_entries: int, sensor: Sensor | None = None
) -> TextRecognizer:
    """``recognizer`` behind the shared cache, when it has an identity and caching is on.

    Lookups are counted on ``sensor`` (the daemon passes its own; default: the process-wide
    sensor, for CLI use).
    """
    if max_entries <= 0 or not cache_identity(recognizer):
        return recognizer
    return CachingRecognizer(recognizer, shared_cache(max_entries), sensor)


class CachingRecognizer:
    """A :class:`TextRecognizer` that reads only crops it has not read before.

    Hits and misses are counted on ``sensor`` (default: the process-wide sensor).  The inner
    recogniser's direction classifier (``direction``) is passed on, not cached.
    """

    def __init__(
        self, inner: TextRecognizer, cache: RecognitionCache, sensor: Sensor | None = None
    ) -> None:
        self.inner = inner
        self.direction: DirectionClassifier | None = direction_of(inner)
        self.cache = cache
        self._sensor = sensor or default_sensor()
        self._salt = cache_identity(inner).encode()

    def key(self, crop: UInt8Array) -> bytes:
        """The cache key of a crop: recogniser identity, shape, dtype and pixel bytes."""
        digest = hashlib.blake2b(self._salt, digest_size=20)
        digest.update(repr((crop.shape, crop.dtype.str)).encode())
        digest.update(crop.tobytes())
        return digest.digest()

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        """Cached results where the same pixels were read before; the model reads the rest."""
        keys = [self.key(crop) for crop in crops]
        found = [self.cache.get(k) for k in keys]
        missing = [i for i, hit in enumerate(found) if hit is None]
        hits = len(crops) - len(missing)
        if hits:
            self._sensor.count("ocr_cache", {"result": "hit"}, hits)
        if missing:
            self._sensor.count("ocr_cache", {"result": "miss"}, len(missing))
            for i, rec in zip(
                missing, self.inner.recognize([crops[i] for i in missing]), strict=True
            ):
                self.cache.put(keys[i], rec)
                found[i] = rec
        return [rec if rec is not None else Recognition("", 0.0) for rec in found]
