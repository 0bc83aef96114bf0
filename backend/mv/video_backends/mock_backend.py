"""The mock video backend: a real, small MP4 of the requested shape, at no cost."""

from pathlib import Path

from backend.mv.metadata import ParameterPlan
from backend.mv.mock_media import write_mock_video
from backend.mv.mock_provider import MOCK_BACKEND, MOCK_VIDEO_MODEL, simulate_generation
from backend.mv.runtime import Runtime
from backend.mv.storage import FileDigest, staged_path
from backend.mv.upstream import Deadline
from backend.mv.video_backends.base import VideoJob, VideoOutcome


class MockVideoBackend:
    name = MOCK_BACKEND
    semaphore_kind = "video-mock"
    subject_to_deadline = False

    def model_name(self, runtime: Runtime) -> str:  # noqa: ARG002 - same signature as live
        return MOCK_VIDEO_MODEL

    def plan(self, job: VideoJob, runtime: Runtime) -> ParameterPlan:  # noqa: ARG002
        return ParameterPlan(used=job.requested_parameters(), not_applied={})

    async def generate(
        self,
        job: VideoJob,
        destination: Path,
        runtime: Runtime,
        deadline: Deadline,  # noqa: ARG002 - mock generation has no deadline
    ) -> VideoOutcome:
        await simulate_generation(
            [job.full_prompt, job.negative_prompt or ""], runtime.settings.mv_mock_delay_seconds
        )
        async with staged_path(destination) as temp:
            await write_mock_video(
                temp,
                aspect_ratio=job.aspect_ratio,
                duration_seconds=job.duration,
                with_audio=job.generate_audio,
                label=job.prompt,
            )
            written = await FileDigest.of_file(temp)
        return VideoOutcome(written=written)
