"""The boundary with the providers: deadlines, retries and error translation.

SDK exceptions become the service's own errors here (`raise ... from exc`, so logs keep the
cause), and only the first call that would create a job is retried: a 429, a 5xx or a
connection that never reached the provider cannot have started paid work.
"""

import asyncio
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import aiohttp
import httpx
from google.genai import errors as genai_errors
from replicate.exceptions import ReplicateError

from backend.mv.errors import (
    BackendError,
    BackendNotConfigured,
    GenerationFailed,
    GenerationTimeout,
    MVError,
    RateLimited,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0

NEVER_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, aiohttp.ClientConnectorError)
"""Network failures before a request was sent: the Replicate SDK's (httpx) and the Gemini
SDK's (aiohttp, see `providers.build_gemini_client`). The Gemini SDK gives aiohttp one
total timeout per request, so a connect that hangs ends in our deadline instead."""
UNREADABLE_ANSWER_ERRORS = (json.JSONDecodeError, UnicodeDecodeError)
"""An answer whose body could not be read, e.g. a proxy's HTML error page labelled as JSON:
google-genai on aiohttp parses error bodies without guarding against it."""
PROVIDER_ERRORS = (
    httpx.RequestError,
    aiohttp.ClientError,
    *UNREADABLE_ANSWER_ERRORS,
    genai_errors.APIError,
    ReplicateError,
)
"""What a provider call raises when the provider or the network fails."""

retry_after_hint: ContextVar[float | None] = ContextVar("retry_after_hint", default=None)


async def remember_retry_after(response: httpx.Response) -> None:
    """httpx response hook: the Replicate SDK drops headers from its errors, so the last
    response's Retry-After is kept in the calling task's context for the translator."""
    retry_after_hint.set(_seconds(response.headers.get("retry-after")))


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s?\s*", value)
    return float(match.group(1)) if match else None


class Deadline:
    """One request's budget for upstream work, in event-loop time.

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


def _retryable(error: MVError, hint_seconds: float | None = None) -> MVError:
    """Mark an error as proof that no job exists upstream, so the create may be sent again."""
    error.retryable = True
    error.retry_hint_seconds = hint_seconds
    return error


def _transport_error(exc: Exception, backend: str) -> MVError:
    """A network failure or an unreadable answer; retryable only if nothing was sent."""
    if isinstance(exc, UNREADABLE_ANSWER_ERRORS):
        return BackendError(
            f"The provider's answer could not be read ({type(exc).__name__})", backend=backend
        )
    error = BackendError(
        f"The provider could not be reached ({type(exc).__name__})", backend=backend
    )
    return _retryable(error) if isinstance(exc, NEVER_SENT_ERRORS) else error


def _google_retry_delay(details: Any) -> float | None:
    error = details.get("error", details) if isinstance(details, dict) else {}
    for item in error.get("details", []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and "retryDelay" in item:
            return _seconds(str(item["retryDelay"]))
    return None


def provider_status_error(
    status: int, message: str, backend: str, retry_after: float | None = None
) -> MVError:
    """The error table's mapping of a provider HTTP status, shared by both providers."""
    if status in {401, 403}:
        return BackendNotConfigured(
            f"The provider rejected the API key: {message}", backend=backend
        )
    if status == 429:
        seconds = max(1, round(retry_after)) if retry_after is not None else None
        limited = RateLimited(
            f"The provider's rate limit was hit: {message}",
            backend=backend,
            retry_after_seconds=seconds,
        )
        return _retryable(limited, retry_after)
    if status >= 500:
        return _retryable(
            BackendError(f"The provider answered {status}: {message}", backend=backend)
        )
    return GenerationFailed(
        f"The provider refused the request ({status}): {message}", backend=backend
    )


def translate_google_error(exc: Exception, backend: str) -> MVError:
    if isinstance(exc, (aiohttp.ClientError, *UNREADABLE_ANSWER_ERRORS)):
        return _transport_error(exc, backend)
    if isinstance(exc, genai_errors.APIError):
        message = exc.message or exc.status or "no message"
        if "API_KEY_INVALID" in str(exc.details) or "API key not valid" in message:
            return BackendNotConfigured(
                f"The provider rejected the API key: {message}", backend=backend
            )
        return provider_status_error(exc.code, message, backend, _google_retry_delay(exc.details))
    raise exc


def translate_replicate_error(exc: Exception, backend: str) -> MVError:
    if isinstance(exc, (httpx.RequestError, *UNREADABLE_ANSWER_ERRORS)):
        return _transport_error(exc, backend)
    if isinstance(exc, ReplicateError):
        message = exc.detail or exc.title or "no detail"
        return provider_status_error(exc.status or 500, message, backend, retry_after_hint.get())
    raise exc


def backoff_seconds(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, at least the provider's Retry-After."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    delay = random.uniform(BACKOFF_BASE_SECONDS, max(BACKOFF_BASE_SECONDS, ceiling))
    return max(delay, retry_after or 0.0)


async def read_status_tolerantly(
    read: Callable[[T], Awaitable[T]],
    last_known: T,
    *,
    translate: Callable[[Exception, str], MVError],
    backend: str,
    job: str,
) -> T:
    """`read(last_known)`: one status read of a running job.

    A transient failure (the provider's 429 or 5xx, or the network) returns the last known
    state, so polling goes on and the paid job is not given up; anything else (a rejected
    key, an unknown job) will not heal and is raised."""
    try:
        return await read(last_known)
    except PROVIDER_ERRORS as exc:
        error = translate(exc, backend)
        if isinstance(error, BackendError | RateLimited):
            logger.info("status read of %s failed transiently (%s); will retry", job, error)
            return last_known
        raise error from exc


async def call_with_retries(
    create: Callable[[], Awaitable[T]],
    *,
    translate: Callable[[Exception, str], MVError],
    backend: str,
    max_attempts: int,
    deadline: Deadline,
) -> T:
    """Run a job-creating call, retrying only errors that prove no job was created.

    Gives up with the last error when attempts run out or when waiting would pass the
    deadline; never sleeps beyond it.
    """
    attempt = 1
    while True:
        try:
            return await create()
        except PROVIDER_ERRORS as exc:
            error = translate(exc, backend)
            if not error.retryable or attempt >= max_attempts:
                raise error from exc
            delay = backoff_seconds(attempt, error.retry_hint_seconds)
            if delay >= deadline.remaining():
                raise error from exc
            logger.info(
                "retrying %s create after %s (attempt %d of %d, in %.2fs)",
                backend,
                error.error_code,
                attempt,
                max_attempts,
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1
