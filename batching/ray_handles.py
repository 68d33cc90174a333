"""Deployment handles tuned for latency, and the choice of transport per sub-batch.

Measured on a 2-core host (``bench/batching.py``), the default Serve handle spends most of its
per-item cost outside the model: a router on its own thread (two cross-thread hops per call),
and arguments and results through Ray's object store (several raylet round trips for a 1 MB
array).  So each model gets two handles sharing one router on the caller's event loop:

* ``direct``: Serve's replica-to-replica gRPC channel (``_by_reference=False``), pickled in
  band; used when both the request (a whole sub-batch) and its expected reply fit well
  inside the channel's 4 MiB message limit;
* ``by_ref``: the object store, for anything bigger (zero-copy for large arrays).

Both use private options of ``DeploymentHandle``; if they are missing the plain public
handle is used, so a Ray upgrade degrades speed, never correctness.  Replicas run the
deployment on their own event loop (``REPLICA_ENV``), and both ends keep large buffers'
pages mapped (``keep_large_buffers_mapped``).
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dxai.batching.buckets import FloatArray
from dxai.engines.spec import ModelSpec
from dxai.observability.logging import get_logger

_log = get_logger(__name__)

DIRECT_MAX_BYTES = 3 << 20
"""Largest request or reply sent over the direct channel (its limit is 4 MiB per message).

Also about where the object store gets cheaper: measured on 2 cores with a no-op model, the
direct channel costs ~3 ms per call plus ~2.7 ms per MB (pickle, protobuf and gRPC copies
on both ends), the object store ~12 ms per call plus far less per MB (one copy into shared
memory, zero-copy reads).  A batch of eight 1.2 MB items: 27 ms direct (with the limit
raised), 13 ms by reference."""

REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
"""Replica environment: run the deployment on the replica's own loop (one hop fewer).

The deployment never blocks that loop: its constructor and batches run in threads."""


Transport = Literal["direct", "object_store"]
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_large_buffers_mapped() -> bool:
    """Let glibc reuse heap memory for megabyte buffers instead of mmap/munmap per buffer.

    Each Serve call copies the item several times (pickle, protobuf, gRPC slices); with
    glibc's defaults every copy of a 1 MB buffer gets fresh pages and faults them in, which
    measured as half the caller's CPU per item.  Fixed thresholds (32 MiB mmap, 128 MiB trim)
    keep those pages.  Process-wide; a no-op (False) where mallopt is not available.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_ok: bool = mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1
    trim_ok: bool = mallopt(_M_TRIM_THRESHOLD, 128 << 20) == 1
    return mmap_ok and trim_ok


@dataclass(frozen=True)
class ModelHandles:
    """The two handles of one deployment (they may be the same object), and the largest
    request and reply the direct one carries."""

    direct: Any
    by_ref: Any
    max_request: int = DIRECT_MAX_BYTES
    max_reply: int = DIRECT_MAX_BYTES

    @property
    def tuned(self) -> bool:
        """True when the direct channel is in use (False: Ray lacked the options)."""
        return self.direct is not self.by_ref

    def transport_for_bytes(self, request: int, reply: int | None) -> Transport:
        """``direct`` when the handles are tuned and request and reply fit the channel."""
        fits = reply is not None and request <= self.max_request and reply <= self.max_reply
        return "direct" if fits and self.tuned else "object_store"

    def pick_for_bytes(self, request: int, reply: int | None) -> Any:
        """The handle for a call of ``request`` bytes expecting ``reply`` bytes back."""
        direct = self.transport_for_bytes(request, reply) == "direct"
        return self.direct if direct else self.by_ref


def reply_nbytes(spec: ModelSpec, item: FloatArray) -> int | None:
    """Bytes of ``item``'s cropped output, from the output spec; None if it is not known."""
    height, width = item.shape[1], item.shape[2]
    post = spec.postprocess
    dims = spec.output.shape[1:]
    if post.crop == "spatial" and len(dims) >= 2:
        dims = (*dims[:-2], math.ceil(height / post.stride), math.ceil(width / post.stride))
    elif post.crop == "sequence" and dims:
        dims = (math.ceil(width / post.stride), *dims[1:])
    if any(d <= 0 for d in dims):
        return None
    return math.prod(dims) * np.dtype(spec.output.dtype).itemsize


def make_handles(deployment: str, app: str) -> ModelHandles:
    """Fresh handles for ``deployment`` whose router runs on the running event loop.

    Call it on the loop that will call ``.remote`` (the router is bound to it).
    """
    from ray.serve.handle import DeploymentHandle

    handle: Any = DeploymentHandle(deployment, app)
    try:
        handle._init(_run_router_in_separate_loop=False)
        direct = handle.options(
            _by_reference=False, request_serialization="pickle", response_serialization="pickle"
        )
    except (AttributeError, TypeError, ValueError, RuntimeError) as exc:
        _log.warning(
            "ray serve handle tuning unavailable, using the default handle (%s)",
            type(exc).__name__,
            extra={"model": deployment},
        )
        plain: Any = DeploymentHandle(deployment, app)
        return ModelHandles(direct=plain, by_ref=plain)
    return ModelHandles(direct=direct, by_ref=handle)


async def close_handles(handles: ModelHandles) -> None:
    """Stop the handles' router (it runs on this loop); errors are logged, not raised."""
    shutdown = getattr(handles.by_ref, "shutdown_async", None)
    if shutdown is None:
        return
    try:
        await shutdown()
    except Exception as exc:  # noqa: BLE001 - best effort on teardown
        _log.warning("ray serve handle shutdown failed", extra={"error_type": type(exc).__name__})
