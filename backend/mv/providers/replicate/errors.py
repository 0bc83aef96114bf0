"""Replicate API errors (replicate SDK on httpx) to the service's errors."""

from contextvars import ContextVar

import httpx
from replicate.exceptions import ReplicateError

from backend.mv.errors import MVError
from backend.mv.providers.translation import (
    UNREADABLE_ANSWER_ERRORS,
    ProviderErrors,
    provider_status_error,
    seconds_from_header,
    transport_error,
)

NEVER_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)
"""Network failures before a request was sent."""

retry_after_hint: ContextVar[float | None] = ContextVar("retry_after_hint", default=None)


async def remember_retry_after(response: httpx.Response) -> None:
    """httpx response hook: the Replicate SDK drops headers from its errors, so the last
    response's Retry-After is kept in the calling task's context for the translator."""
    retry_after_hint.set(seconds_from_header(response.headers.get("retry-after")))


def translate_replicate_error(exc: Exception, backend: str) -> MVError:
    if isinstance(exc, (httpx.RequestError, *UNREADABLE_ANSWER_ERRORS)):
        return transport_error(exc, backend, never_sent=isinstance(exc, NEVER_SENT_ERRORS))
    if isinstance(exc, ReplicateError):
        message = exc.detail or exc.title or "no detail"
        return provider_status_error(exc.status or 500, message, backend, retry_after_hint.get())
    raise exc


REPLICATE_ERRORS = ProviderErrors(
    raised=(httpx.RequestError, *UNREADABLE_ANSWER_ERRORS, ReplicateError),
    translate=translate_replicate_error,
)
