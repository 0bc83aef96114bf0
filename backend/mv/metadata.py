"""What every stored artifact reports about how it was made."""

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from backend.mv.storage import utc_now_iso


class GenerationMetadata(BaseModel):
    backend_used: str = Field(description="replicate, gemini or mock")
    model_used: str
    parameters_used: dict[str, Any] = Field(description="The values that reached the provider")
    defaults_applied: list[str] = Field(description="Which of them came from the YAML configs")
    parameters_not_applied: dict[str, str] = Field(
        description="Requested parameters the backend cannot take, with the reason"
    )
    generation_timestamp: str
    processing_time_seconds: float
    queue_wait_seconds: float = Field(description="Time spent waiting for a concurrency slot")


def generation_fields(
    *,
    backend: str,
    model: str,
    plan: "ParameterPlan",
    defaults_applied: list[str],
    started: float,
    queue_wait_seconds: float,
) -> dict[str, Any]:
    """The `GenerationMetadata` fields of a finished generation; `started` is the request's
    `time.monotonic()` at arrival."""
    return {
        "backend_used": backend,
        "model_used": model,
        "parameters_used": plan.used,
        "defaults_applied": plan.defaults_used(defaults_applied),
        "parameters_not_applied": plan.not_applied,
        "generation_timestamp": utc_now_iso(),
        "processing_time_seconds": round(time.monotonic() - started, 3),
        "queue_wait_seconds": queue_wait_seconds,
    }


@dataclass(frozen=True)
class ParameterPlan:
    """Which parameters reach the provider, and why requested ones do not."""

    used: dict[str, Any]
    not_applied: dict[str, str]

    def defaults_used(self, defaults_applied: list[str]) -> list[str]:
        """`defaults_applied` as reported: only the config values that were actually used."""
        return [name for name in defaults_applied if name in self.used]


def plan_parameters(
    resolved: dict[str, Any],
    accepted: Collection[str],
    from_defaults: Collection[str],
    reason: Callable[[str], str],
) -> ParameterPlan:
    """Split the resolved parameters by what the provider takes.

    A parameter the client asked for that the provider cannot take is listed with its reason
    (never silently dropped); a config default it cannot take is simply not sent.
    """
    return ParameterPlan(
        used={name: value for name, value in resolved.items() if name in accepted},
        not_applied={
            name: reason(name)
            for name in resolved
            if name not in accepted and name not in from_defaults
        },
    )
