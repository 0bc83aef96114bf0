"""The mock video backend: a real, small MP4 of the requested shape, at no cost."""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from backend.mv.params import ParameterPlan
from backend.mv.providers import Provider
from backend.mv.providers.mock.failures import simulate_generation
from backend.mv.providers.mock.media import write_mock_video
from backend.mv.providers.tracking import UpstreamTracker
from backend.mv.storage.base import ArtifactStore, make_and_store
from backend.mv.storage.files import FileDigest
from backend.mv.video_backends.base import VideoJob, VideoOutcome


@dataclass
class MockVideoBackend:
    """No deadline: mock generation answers after `delay_seconds`, failures included."""

    name: ClassVar[Provider] = Provider.MOCK
    model: ClassVar[str] = "mock-veo"

    delay_seconds: float

    def plan(self, job: VideoJob) -> ParameterPlan:
        return ParameterPlan(used=job.requested_parameters(), not_applied={})

    async def generate(
        self,
        job: VideoJob,
        plan: ParameterPlan,  # noqa: ARG002 - the mock takes every parameter
        store: ArtifactStore,
        key: str,
        tracker: UpstreamTracker,  # noqa: ARG002 - no provider job to record
    ) -> VideoOutcome:
        await simulate_generation([job.full_prompt, job.negative_prompt or ""], self.delay_seconds)

        async def render(path: Path) -> FileDigest:
            await write_mock_video(
                path,
                aspect_ratio=job.aspect_ratio,
                duration_seconds=job.duration,
                with_audio=job.generate_audio,
                label=job.prompt,
            )
            return await FileDigest.of_file(path)

        return VideoOutcome(written=await make_and_store(store, key, render, backend=self.name))
