"""Per-kind caps on upstream jobs in flight, and on the requests waiting for one.

Each kind of upstream job (scenes, character images, Replicate videos, Gemini videos, mock)
has its own lane: `max_in_flight` slots and at most `max_queued` requests waiting for one,
so a burst of video requests never starves scene generation and never grows memory without
bound. A request beyond the queue is a 503 `SERVER_BUSY` with `Retry-After`, before it has
cost anything. The wait is reported to the client as `queue_wait_seconds`.

A waiting request may name its client's departure: when the client leaves before the slot
is free, the request ends there (`ClientClosedRequest`), before any provider call.

Generators take any `Slots`: this in-process limiter, or `AdmittedByQueue` for a job that
its durable queue already admitted (the queue is then what caps and bounds the lane).
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from backend.mv.errors import ClientClosedRequest, ServerBusy

logger = logging.getLogger(__name__)

Departure = Callable[[], Awaitable[None]]
"""Completes when the request's client has disconnected (and never returns otherwise)."""


class QueueTicket:
    """How long a request waited for its slot, in seconds."""

    def __init__(self, waited_seconds: float) -> None:
        self.waited_seconds = round(waited_seconds, 3)


class Slots(Protocol):
    def slot(
        self, kind: str, *, departure: Departure | None = None
    ) -> AbstractAsyncContextManager[QueueTicket]:
        """Hold one of `kind`'s slots for the block; the ticket says how long it waited."""
        ...


@dataclass(frozen=True)
class AdmittedByQueue:
    """The slot of a job its queue has started: nothing more to wait for, and the time the
    job spent queued is its wait."""

    waited_seconds: float

    @asynccontextmanager
    async def slot(
        self,
        kind: str,  # noqa: ARG002 - the queue was the job's lane
        *,
        departure: Departure | None = None,  # noqa: ARG002 - the job outlives its client
    ) -> AsyncIterator[QueueTicket]:
        yield QueueTicket(self.waited_seconds)


@dataclass
class _Lane:
    slots: asyncio.Semaphore
    waiting: int = 0


async def _give_up(acquiring: asyncio.Task[bool], slots: asyncio.Semaphore) -> None:
    """Stop waiting for a slot; one granted in the meantime goes back to the next waiter."""
    acquiring.cancel()
    await asyncio.wait({acquiring})
    if not acquiring.cancelled():
        slots.release()


async def _acquire_unless_gone(slots: asyncio.Semaphore, departure: Departure | None) -> None:
    """Take one of `slots`, or raise `ClientClosedRequest` if `departure` completes first."""
    if departure is None:
        await slots.acquire()
        return
    acquiring = asyncio.ensure_future(slots.acquire())
    leaving = asyncio.ensure_future(departure())
    try:
        await asyncio.wait({acquiring, leaving}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        leaving.cancel()
        await _give_up(acquiring, slots)
        raise
    leaving.cancel()
    if acquiring.done():
        return
    await _give_up(acquiring, slots)
    raise ClientClosedRequest(
        "The client left while the request waited for a slot; nothing was started"
    )


class GenerationLimiter:
    """`max_in_flight` slots per lane, unless `lane_caps` gives a lane its own number (the
    `render` lane: `MV_MAX_CONCURRENT_RENDERS`)."""

    def __init__(
        self, max_in_flight: int, max_queued: int, lane_caps: Mapping[str, int] | None = None
    ) -> None:
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.lane_caps = dict(lane_caps or {})
        self._lanes: dict[str, _Lane] = {}

    def _lane(self, kind: str) -> _Lane:
        if kind not in self._lanes:
            slots = self.lane_caps.get(kind, self.max_in_flight)
            self._lanes[kind] = _Lane(asyncio.Semaphore(slots))
        return self._lanes[kind]

    @asynccontextmanager
    async def slot(
        self, kind: str, *, departure: Departure | None = None
    ) -> AsyncIterator[QueueTicket]:
        """Hold one of `kind`'s slots for the block.

        Raises `ServerBusy` when `max_queued` requests already wait for one, and
        `ClientClosedRequest` when `departure` completes while this one waits.
        """
        lane = self._lane(kind)
        queued_at = time.monotonic()
        if lane.slots.locked():
            if lane.waiting >= self.max_queued:
                raise ServerBusy(
                    f"The {kind} queue is full ({lane.waiting} requests waiting); try again shortly"
                )
            lane.waiting += 1
            try:
                await _acquire_unless_gone(lane.slots, departure)
            except ClientClosedRequest:
                logger.info("client left while waiting for a %s slot; dropped unpaid", kind)
                raise
            finally:
                lane.waiting -= 1
        else:
            await lane.slots.acquire()
        try:
            yield QueueTicket(time.monotonic() - queued_at)
        finally:
            lane.slots.release()
