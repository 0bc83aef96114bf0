"""Per-kind caps on upstream jobs in flight.

Each kind of upstream job (scenes, character images, Replicate videos, Gemini videos, mock)
has its own semaphore, so a burst of video requests never starves scene generation. Requests
beyond the cap wait their turn; the wait is reported to the client as `queue_wait_seconds`.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class QueueTicket:
    """How long a request waited for its slot, in seconds."""

    def __init__(self, waited_seconds: float) -> None:
        self.waited_seconds = round(waited_seconds, 3)


class GenerationLimiter:
    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    def _semaphore(self, kind: str) -> asyncio.Semaphore:
        if kind not in self._semaphores:
            self._semaphores[kind] = asyncio.Semaphore(self.max_in_flight)
        return self._semaphores[kind]

    @asynccontextmanager
    async def slot(self, kind: str) -> AsyncIterator[QueueTicket]:
        semaphore = self._semaphore(kind)
        queued_at = time.monotonic()
        async with semaphore:
            yield QueueTicket(time.monotonic() - queued_at)
