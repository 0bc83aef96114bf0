"""Deadlines and backoff: what counts against a request's budget for provider work."""

import asyncio

import pytest

from backend.mv.errors import GenerationTimeout
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.retries import BACKOFF_MAX_SECONDS, backoff_seconds


async def test_waiting_for_a_slot_does_not_use_up_the_deadline() -> None:
    slots = asyncio.Semaphore(1)
    await slots.acquire()
    asyncio.get_running_loop().call_later(0.5, slots.release)
    deadline = Deadline(0.3)
    async with deadline.enforced("test"), deadline.holding(slots):
        await asyncio.sleep(0.1)
    assert not slots.locked()


async def test_work_while_holding_a_slot_still_counts() -> None:
    deadline = Deadline(0.1)
    with pytest.raises(GenerationTimeout):
        async with deadline.enforced("test"), deadline.holding(asyncio.Semaphore(1)):
            await asyncio.sleep(5)


@pytest.mark.parametrize("attempt", [1, 2, 5, 10])
def test_backoff_stays_within_its_bounds(attempt: int) -> None:
    delays = [backoff_seconds(attempt, None) for _ in range(200)]
    assert min(delays) >= 0.5
    assert max(delays) <= BACKOFF_MAX_SECONDS


def test_backoff_honours_a_longer_retry_after() -> None:
    assert backoff_seconds(1, 7.0) == 7.0
