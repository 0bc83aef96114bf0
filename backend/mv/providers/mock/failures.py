"""Simulated provider failures: a marker in the request's text fails the mock generation
with the same error a live backend gives."""

import asyncio

from backend.mv.errors import (
    ContentPolicyViolation,
    GenerationFailed,
    GenerationTimeout,
    MVError,
    RateLimited,
)
from backend.mv.providers import Provider

MOCK_RETRY_AFTER_SECONDS = 5

FAILURE_MARKERS: dict[str, type[MVError]] = {
    "[mock:content_policy]": ContentPolicyViolation,
    "[mock:rate_limit]": RateLimited,
    "[mock:failed]": GenerationFailed,
    "[mock:timeout]": GenerationTimeout,
}


def _simulated_failure(texts: list[str]) -> MVError | None:
    joined = "\n".join(texts)
    for marker, error_class in FAILURE_MARKERS.items():
        if marker in joined:
            message = f"Simulated by the mock provider ({marker})"
            if error_class is RateLimited:
                return RateLimited(
                    message, backend=Provider.MOCK, retry_after_seconds=MOCK_RETRY_AFTER_SECONDS
                )
            return error_class(message, backend=Provider.MOCK)
    return None


async def simulate_generation(texts: list[str], delay_seconds: float) -> None:
    """Wait like a provider would (without blocking the loop), then fail if a marker asks."""
    await asyncio.sleep(delay_seconds)
    if failure := _simulated_failure(texts):
        raise failure
