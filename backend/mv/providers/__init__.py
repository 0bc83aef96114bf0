"""One package per provider: its client, its calls and the translation of its errors.

The shared pieces beside them: `deadline` (one request's time budget), `retries` (when a
call may be sent again), `translation` (provider statuses to the service's errors),
`pools` (HTTP connection pools) and `downloads` (a provider's output file into the store).
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from backend.config import Settings
from backend.mv.errors import BackendNotConfigured

ClientT = TypeVar("ClientT")


class Provider(StrEnum):
    """The value of `backend_used` in every answer and error."""

    GEMINI = "gemini"
    REPLICATE = "replicate"
    MOCK = "mock"


def require_client(client: ClientT | None, provider: Provider, setting: str) -> ClientT:
    """The provider's client, or 503 `BACKEND_NOT_CONFIGURED` when its key is not set."""
    if client is None:
        raise BackendNotConfigured(f"{setting} is not set", backend=provider)
    return client


@dataclass(frozen=True)
class JobPolicy:
    """How the service runs one provider job: the whole job's deadline, how often it is
    polled, and how many times its create may be sent (only when no job can exist yet)."""

    timeout_seconds: float
    poll_interval_seconds: float
    max_attempts: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "JobPolicy":
        return cls(
            timeout_seconds=settings.mv_generation_timeout_seconds,
            poll_interval_seconds=settings.mv_poll_interval_seconds,
            max_attempts=settings.mv_upstream_max_attempts,
        )
