"""What every video backend receives and must provide."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from backend.mv.params import ParameterPlan
from backend.mv.providers import Provider
from backend.mv.providers.tracking import UpstreamTracker
from backend.mv.storage.base import ArtifactStore
from backend.mv.storage.files import FileDigest

PARAMETER = {"parameter": True}
"""Marks the `VideoJob` fields that are request parameters, reported in `parameters_used`."""


@dataclass(frozen=True)
class ReferenceImage:
    """A validated reference image; `source` says how the client sent it.

    Its bytes are not held: a backend calls `load()` once it is about to send them, so a
    request waiting for a slot holds no decoded media.
    """

    mime_type: str
    source: str
    size_bytes: int
    load: Callable[[], Awaitable[bytes]]

    def describe(self) -> str:
        return f"{self.source} ({self.mime_type}, {self.size_bytes} bytes)"


@dataclass(frozen=True)
class VideoJob:
    """One clip to render, with every default already applied and every value checked.

    A new request parameter is one more field marked `PARAMETER`: `requested_parameters`
    reports it, and each backend's `plan` says whether it reaches the provider.
    """

    prompt: str
    full_prompt: str
    aspect_ratio: str = field(metadata=PARAMETER)
    duration: int = field(metadata=PARAMETER)
    generate_audio: bool = field(metadata=PARAMETER)
    person_generation: str = field(metadata=PARAMETER)
    negative_prompt: str | None = field(default=None, metadata=PARAMETER)
    seed: int | None = field(default=None, metadata=PARAMETER)
    reference_image: ReferenceImage | None = None
    from_defaults: frozenset[str] = frozenset()
    """Names whose value came from the config, not from the client."""

    def requested_parameters(self) -> dict[str, Any]:
        """Every parameter the client asked for or a default supplied, by its API name."""
        parameters = {
            item.name: getattr(self, item.name)
            for item in fields(self)
            if item.metadata.get("parameter") and getattr(self, item.name) is not None
        }
        if self.reference_image is not None:
            parameters["reference_image"] = self.reference_image.describe()
        return parameters


@dataclass
class VideoOutcome:
    """What a backend did: the file it wrote and the upstream job that made it."""

    written: FileDigest
    provider_job_id: str | None = None


class VideoBackend(Protocol):
    """Built once with its client and config; `generate` runs under its own deadline."""

    name: Provider
    """Value of `backend_used`; each backend has its own concurrency cap."""
    model: str

    def plan(self, job: VideoJob) -> ParameterPlan: ...

    async def generate(
        self,
        job: VideoJob,
        plan: ParameterPlan,
        store: ArtifactStore,
        key: str,
        tracker: UpstreamTracker,
    ) -> VideoOutcome:
        """Render the clip and store it under `key`, sending what `plan.used` holds; the
        provider job is reported to `tracker` as soon as it exists (or resumed from it)."""
        ...
