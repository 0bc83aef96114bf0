"""When a provider call may be sent again, and the one loop that does it.

Only calls that cannot have started paid work are retried: a create refused with a 429, a
5xx or a connection that never reached the provider, and GETs of a finished job's output.
A status read that fails transiently keeps the last known state, so polling goes on and
the paid job is not given up.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from backend.mv.errors import BackendError, MVError, RateLimited
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.translation import ProviderErrors

logger = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0


def backoff_seconds(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, at least the provider's Retry-After."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    delay = random.uniform(BACKOFF_BASE_SECONDS, max(BACKOFF_BASE_SECONDS, ceiling))
    return max(delay, retry_after or 0.0)


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    max_attempts: int,
    deadline: Deadline | None = None,
) -> T:
    """Run `attempt` until it succeeds, sending it again only after an error marked
    `retryable`, with backoff, up to `max_attempts`.

    With a `deadline`, gives up with the last error rather than sleep past it.
    """
    attempt_number = 1
    while True:
        try:
            return await attempt()
        except MVError as error:
            if not error.retryable or attempt_number >= max_attempts:
                raise
            delay = backoff_seconds(attempt_number, error.retry_hint_seconds)
            if deadline is not None and delay >= deadline.remaining():
                raise
            logger.info(
                "retrying %s after %s (attempt %d of %d, in %.2fs)",
                what,
                error.error_code,
                attempt_number,
                max_attempts,
                delay,
            )
            await asyncio.sleep(delay)
            attempt_number += 1


async def call_with_retries(
    create: Callable[[], Awaitable[T]],
    *,
    errors: ProviderErrors,
    backend: str,
    max_attempts: int,
    deadline: Deadline,
) -> T:
    """Run a job-creating call, retrying only errors that prove no job was created."""

    async def translated() -> T:
        try:
            return await create()
        except errors.raised as exc:
            raise errors.translate(exc, backend) from exc

    return await with_retries(
        translated, what=f"{backend} create", max_attempts=max_attempts, deadline=deadline
    )


async def read_status_tolerantly(
    read: Callable[[T], Awaitable[T]],
    last_known: T,
    *,
    errors: ProviderErrors,
    backend: str,
    job: str,
) -> T:
    """`read(last_known)`: one status read of a running job.

    A transient failure (the provider's 429 or 5xx, or the network) returns the last known
    state; anything else (a rejected key, an unknown job) will not heal and is raised."""
    try:
        return await read(last_known)
    except errors.raised as exc:
        error = errors.translate(exc, backend)
        if isinstance(error, BackendError | RateLimited):
            logger.info("status read of %s failed transiently (%s); will retry", job, error)
            return last_known
        raise error from exc
