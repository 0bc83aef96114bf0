"""Wakeups for whoever follows a job in this process: a waiting synchronous request, an
event stream, the webhook dispatcher.

The job store calls `notify(job_id)` after each committed change, from whatever thread
made it; followers then read the store again. A change made by another process is only
seen by reading the store, so followers also read it every `FALLBACK_POLL_SECONDS`.
"""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

FALLBACK_POLL_SECONDS = 1.0


class JobSignals:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._followers: dict[str, set[asyncio.Event]] = {}
        self.any_change = asyncio.Event()

    def notify(self, job_id: str) -> None:
        """Safe from any thread."""
        self._loop.call_soon_threadsafe(self._wake, job_id)

    def _wake(self, job_id: str) -> None:
        self.any_change.set()
        for event in self._followers.get(job_id, ()):
            event.set()

    @contextmanager
    def follow(self, job_id: str) -> Iterator["Follower"]:
        event = asyncio.Event()
        self._followers.setdefault(job_id, set()).add(event)
        try:
            yield Follower(event)
        finally:
            followers = self._followers.get(job_id)
            if followers is not None:
                followers.discard(event)
                if not followers:
                    del self._followers[job_id]


class Follower:
    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    async def changed(self) -> None:
        """Returns when the job changed, or after `FALLBACK_POLL_SECONDS` (read the store
        either way)."""
        try:
            async with asyncio.timeout(FALLBACK_POLL_SECONDS):
                await self._event.wait()
        except TimeoutError:
            pass
        self._event.clear()
