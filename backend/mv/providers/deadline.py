"""One request's time budget for upstream work, in event-loop time."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from backend.mv.errors import GenerationTimeout


class Deadline:
    """`MV_GENERATION_TIMEOUT_SECONDS` for one generation: every attempt, poll and download.

    Time spent waiting for one of the service's own slots (`holding`) is not counted: the
    budget is for the provider's work, as `MV_GENERATION_TIMEOUT_SECONDS` promises.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires_at = asyncio.get_running_loop().time() + seconds
        self._timeout: asyncio.Timeout | None = None

    def remaining(self) -> float:
        return max(0.0, self.expires_at - asyncio.get_running_loop().time())

    @asynccontextmanager
    async def holding(self, slots: asyncio.Semaphore) -> AsyncIterator[None]:
        """Hold one of `slots` for the block; the wait for it extends the deadline."""
        loop = asyncio.get_running_loop()
        queued_at = loop.time()
        if self._timeout is not None:
            self._timeout.reschedule(None)
        try:
            await slots.acquire()
        finally:
            self.expires_at += loop.time() - queued_at
            if self._timeout is not None:
                self._timeout.reschedule(self.expires_at)
        try:
            yield
        finally:
            slots.release()

    @asynccontextmanager
    async def enforced(self, backend: str) -> AsyncIterator[None]:
        """Raise `GenerationTimeout` when the budget runs out inside the block."""
        try:
            async with asyncio.timeout_at(self.expires_at) as timeout:
                self._timeout = timeout
                yield
        except TimeoutError as exc:
            raise GenerationTimeout(
                f"The provider did not finish within {self.seconds:g} seconds",
                backend=backend,
            ) from exc
