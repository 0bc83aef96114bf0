"""The slot a generation runs in, and how long it waited for it.

Each kind of upstream job (scenes, character images, Replicate videos, Gemini videos, mock,
renders) has its own lane: a durable job queue per lane (`backend.jobs`) caps the jobs
running at once and bounds those waiting, so a burst of video requests never starves scene
generation. A generator takes any `Slots`; the job engine hands it `AdmittedByQueue`, the
slot its queue already granted, whose wait is the time the job spent queued
(`queue_wait_seconds`).
"""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol


class QueueTicket:
    """How long a request waited for its slot, in seconds."""

    def __init__(self, waited_seconds: float) -> None:
        self.waited_seconds = round(waited_seconds, 3)


class Slots(Protocol):
    def slot(self, kind: str) -> AbstractAsyncContextManager[QueueTicket]:
        """Hold one of `kind`'s slots for the block; the ticket says how long it waited."""
        ...


@dataclass(frozen=True)
class AdmittedByQueue:
    """The slot of a job its queue has started: nothing more to wait for, and the time the
    job spent queued is its wait."""

    waited_seconds: float

    @asynccontextmanager
    async def slot(self, kind: str) -> AsyncIterator[QueueTicket]:  # noqa: ARG002 - the queue was the lane
        yield QueueTicket(self.waited_seconds)
