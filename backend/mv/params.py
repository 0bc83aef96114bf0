"""What the generators share about parameters: text checks, defaults, allowed choices, which
parameters reach the provider, and the metadata every stored artifact reports."""

import time
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from pydantic import AfterValidator, BaseModel, Field

from backend.mv.errors import problem
from backend.mv.storage.identity import utc_now_iso

ALLOWED_CONTROL_CHARACTERS = {"\n", "\r", "\t"}


def _checked_text(value: str | None) -> str | None:
    """Reject blank text and control characters; the text itself passes on unchanged, because
    the client's words reach the provider verbatim. An optional field's null stays null."""
    if value is None:
        return None
    if not value.strip():
        raise ValueError("must not be blank")
    for character in value:
        if character not in ALLOWED_CONTROL_CHARACTERS and unicodedata.category(character) == "Cc":
            raise ValueError(f"must not contain control character U+{ord(character):04X}")
    return value


CheckedText = AfterValidator(_checked_text)
"""Use as `Annotated[str, Field(max_length=...), CheckedText]`."""


def apply_defaults(
    request: BaseModel, defaults: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The value of each field in `defaults`: the request's own, or the default when the
    request left it out; and the names that took the default (`defaults_applied`)."""
    values: dict[str, Any] = {}
    defaults_applied = []
    for name, default in defaults.items():
        value = getattr(request, name)
        if value is None:
            value = default
            defaults_applied.append(name)
        values[name] = value
    return values, defaults_applied


def choice_problems(values: dict[str, Any], allowed: dict[str, list[Any]]) -> list[dict[str, str]]:
    """A validation problem for each value outside its allowed list (from the YAML configs)."""
    return [
        problem(name, f"must be one of {choices}", "enum")
        for name, choices in allowed.items()
        if values[name] not in choices
    ]


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
    job_id: str | None = Field(
        default=None, description="The job that made it (also the answer's X-Job-ID header)"
    )


def generation_fields(
    *,
    backend: str,
    model: str,
    plan: "ParameterPlan",
    defaults_applied: list[str],
    started: float,
    queue_wait_seconds: float,
    job_id: str | None,
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
        "job_id": job_id,
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


class SidecarFields(BaseModel):
    """What every artifact's sidecar (`<id>.json`) holds beside its generation metadata."""

    file_name: str
    created_at: str


def info_fields(sidecar: dict[str, Any], size_bytes: int | None) -> dict[str, Any]:
    """What an artifact's `/info` answer says beside its id: size, creation time, whether the
    file still exists (`size_bytes` None: only the sidecar survives) and the sidecar."""
    return {
        "file_size_bytes": size_bytes or 0,
        "created_at": str(sidecar.get("created_at", "")),
        "exists": size_bytes is not None,
        "metadata": sidecar,
    }
