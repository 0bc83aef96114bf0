"""Gemini API errors (google-genai on aiohttp) to the service's errors."""

from typing import Any

import aiohttp
from google.genai import errors as genai_errors

from backend.mv.errors import BackendNotConfigured, MVError
from backend.mv.providers.translation import (
    UNREADABLE_ANSWER_ERRORS,
    ProviderErrors,
    provider_status_error,
    seconds_from_header,
    transport_error,
)

NEVER_SENT_ERRORS = (aiohttp.ClientConnectorError,)
"""Connects that failed: nothing reached the provider. The SDK gives aiohttp one total
timeout per request, so a connect that hangs ends in our deadline instead."""


def _retry_delay(details: Any) -> float | None:
    """Google's `RetryInfo.retryDelay` detail of a 429 `RESOURCE_EXHAUSTED`."""
    error = details.get("error", details) if isinstance(details, dict) else {}
    for item in error.get("details", []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and "retryDelay" in item:
            return seconds_from_header(str(item["retryDelay"]))
    return None


def translate_google_error(exc: Exception, backend: str) -> MVError:
    if isinstance(exc, (aiohttp.ClientError, *UNREADABLE_ANSWER_ERRORS)):
        return transport_error(exc, backend, never_sent=isinstance(exc, NEVER_SENT_ERRORS))
    if isinstance(exc, genai_errors.APIError):
        message = exc.message or exc.status or "no message"
        if "API_KEY_INVALID" in str(exc.details) or "API key not valid" in message:
            return BackendNotConfigured(
                f"The provider rejected the API key: {message}", backend=backend
            )
        return provider_status_error(exc.code, message, backend, _retry_delay(exc.details))
    raise exc


GEMINI_ERRORS = ProviderErrors(
    raised=(aiohttp.ClientError, *UNREADABLE_ANSWER_ERRORS, genai_errors.APIError),
    translate=translate_google_error,
)
