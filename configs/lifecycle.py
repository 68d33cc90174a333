"""The component lifecycle shared by dxai's long-lived parts."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncLifecycle:
    """Mixin: an async context manager over idempotent ``start()`` / ``stop()``.

    Subclasses implement both methods so that calling either twice is harmless; leaving the
    ``async with`` block always stops the component, also on error or cancellation.
    """

    async def start(self) -> None:
        """Acquire resources and start background tasks (idempotent)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Release resources and await background tasks (idempotent)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
