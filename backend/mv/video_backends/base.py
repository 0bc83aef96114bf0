"""What every video backend receives and must provide."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from backend.mv.metadata import ParameterPlan
from backend.mv.runtime import Runtime
from backend.mv.storage import FileDigest
from backend.mv.upstream import Deadline


@dataclass(frozen=True)
class ReferenceImage:
    """A validated reference image, decoded; `source` says how the client sent it."""

    data: bytes
    mime_type: str
    source: str

    def describe(self) -> str:
        return f"{self.source} ({self.mime_type}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class VideoJob:
    """One clip to render, with every default already applied and every value checked."""

    prompt: str
    full_prompt: str
    aspect_ratio: str
    duration: int
    generate_audio: bool
    person_generation: str
    negative_prompt: str | None = None
    seed: int | None = None
    reference_image: ReferenceImage | None = None
    from_defaults: frozenset[str] = frozenset()
    """Names whose value came from the config, not from the client."""

    def requested_parameters(self) -> dict[str, Any]:
        """Every parameter the client asked for or a default supplied, by its API name."""
        parameters: dict[str, Any] = {
            "aspect_ratio": self.aspect_ratio,
            "duration": self.duration,
            "generate_audio": self.generate_audio,
            "person_generation": self.person_generation,
        }
        if self.negative_prompt is not None:
            parameters["negative_prompt"] = self.negative_prompt
        if self.seed is not None:
            parameters["seed"] = self.seed
        if self.reference_image is not None:
            parameters["reference_image"] = self.reference_image.describe()
        return parameters


@dataclass
class VideoOutcome:
    """What a backend did: the file it wrote and the upstream job that made it."""

    written: FileDigest
    provider_job_id: str | None = None


class VideoBackend(Protocol):
    name: str
    """Value of `backend_used`."""
    semaphore_kind: str
    """Which concurrency cap the backend's upstream jobs count against."""
    subject_to_deadline: bool

    def model_name(self, runtime: Runtime) -> str: ...

    def plan(self, job: VideoJob, runtime: Runtime) -> ParameterPlan: ...

    async def generate(
        self, job: VideoJob, destination: Path, runtime: Runtime, deadline: Deadline
    ) -> VideoOutcome: ...
