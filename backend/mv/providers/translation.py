"""Provider answers to the service's errors: the error table's mapping, shared by every
provider, and what marks an error as safe to send again.

Each provider package has its own `ProviderErrors`: which exceptions its SDK raises and how
they translate. Translation happens at the boundary, `raise ... from exc`, so logs keep the
cause and answers never show it.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from backend.mv.errors import (
    BackendError,
    BackendNotConfigured,
    GenerationFailed,
    MVError,
    RateLimited,
)

UNREADABLE_ANSWER_ERRORS = (json.JSONDecodeError, UnicodeDecodeError)
"""An answer whose body could not be read, e.g. a proxy's HTML error page labelled as JSON:
google-genai on aiohttp parses error bodies without guarding against it."""


@dataclass(frozen=True)
class ProviderErrors:
    """What a provider's calls raise when the provider or the network fails, and how each
    becomes the service's error for `backend`."""

    raised: tuple[type[Exception], ...]
    translate: Callable[[Exception, str], MVError]


def seconds_from_header(value: str | None) -> float | None:
    """`Retry-After: 7` or Google's `"7s"`; None when absent or unreadable."""
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s?\s*", value)
    return float(match.group(1)) if match else None


def retryable(error: MVError, hint_seconds: float | None = None) -> MVError:
    """Mark an error as proof that no job exists upstream, so the create may be sent again."""
    error.retryable = True
    error.retry_hint_seconds = hint_seconds
    return error


def transport_error(exc: Exception, backend: str, *, never_sent: bool) -> MVError:
    """A network failure or an unreadable answer; retryable only if nothing was sent."""
    if isinstance(exc, UNREADABLE_ANSWER_ERRORS):
        return BackendError(
            f"The provider's answer could not be read ({type(exc).__name__})", backend=backend
        )
    error = BackendError(
        f"The provider could not be reached ({type(exc).__name__})", backend=backend
    )
    return retryable(error) if never_sent else error


def provider_status_error(
    status: int, message: str, backend: str, retry_after: float | None = None
) -> MVError:
    """The error table's mapping of a provider HTTP status, shared by every provider."""
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
        return retryable(limited, retry_after)
    if status >= 500:
        return retryable(
            BackendError(f"The provider answered {status}: {message}", backend=backend)
        )
    return GenerationFailed(
        f"The provider refused the request ({status}): {message}", backend=backend
    )
