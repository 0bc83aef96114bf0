"""Veo through the Gemini Developer API (google-genai 2.x; 3.x refuses video in this mode).

The SDK starts a long-running operation (`predictLongRunning`); we poll it without blocking
until our deadline, then stream the clip's `uri` with aiohttp: the SDK's `files.download` would
read the whole clip into memory. In Developer API mode the SDK refuses `seed` and
`generate_audio` before sending anything, so they are reported in `parameters_not_applied`
instead; Veo 3.1 there always renders audio. The Developer API offers no way to cancel an
operation, so one still running at the deadline is left to finish upstream (and is billed).
"""

import asyncio
import logging
from pathlib import Path

from google.genai import types as genai_types
from yarl import URL

from backend.mv import debug
from backend.mv.downloads import download_output, same_origin
from backend.mv.errors import (
    ContentPolicyViolation,
    GenerationFailed,
)
from backend.mv.metadata import ParameterPlan, plan_parameters
from backend.mv.providers import GEMINI_BACKEND
from backend.mv.runtime import Runtime
from backend.mv.upstream import (
    Deadline,
    call_with_retries,
    read_status_tolerantly,
    translate_google_error,
)
from backend.mv.video_backends.base import VideoJob, VideoOutcome

logger = logging.getLogger(__name__)

NOT_SENT_BY_SDK = {
    "seed": "the Gemini Developer API does not take a seed (google-genai refuses it)",
    "generate_audio": (
        "the Gemini Developer API does not take generate_audio (google-genai refuses it); "
        "Veo 3.1 there always renders audio"
    ),
}


def _config(job: VideoJob) -> genai_types.GenerateVideosConfig:
    reference_images = None
    if job.reference_image is not None:
        reference_images = [
            genai_types.VideoGenerationReferenceImage(
                image=genai_types.Image(
                    image_bytes=job.reference_image.data, mime_type=job.reference_image.mime_type
                ),
                reference_type=genai_types.VideoGenerationReferenceType.ASSET,
            )
        ]
    return genai_types.GenerateVideosConfig(
        number_of_videos=1,
        aspect_ratio=job.aspect_ratio,
        duration_seconds=job.duration,
        person_generation=job.person_generation,
        negative_prompt=job.negative_prompt,
        reference_images=reference_images,
    )


def _finished_video_uri(operation: genai_types.GenerateVideosOperation) -> str:
    """The clip's download URI from a done operation, or the error the operation carries."""
    if operation.error:
        message = str(operation.error.get("message", operation.error))
        raise GenerationFailed(f"The model failed: {message}", backend=GEMINI_BACKEND)
    response = operation.response or operation.result
    if response is not None and response.rai_media_filtered_count:
        reasons = "; ".join(response.rai_media_filtered_reasons or []) or "no reason given"
        raise ContentPolicyViolation(
            f"The provider's safety filter removed the video: {reasons}", backend=GEMINI_BACKEND
        )
    videos = (response.generated_videos if response else None) or []
    uri = videos[0].video.uri if videos and videos[0].video else None
    if not uri:
        raise GenerationFailed("The operation finished without a video", backend=GEMINI_BACKEND)
    return uri


def _key_header(uri: str, api_key: str, base_url: str) -> dict[str, str] | None:
    """The API key goes only to the Gemini API itself, over HTTPS; a clip URI on any other
    host is fetched without it."""
    if URL(uri, encoded=True).scheme == "https" and same_origin(uri, base_url):
        return {"x-goog-api-key": api_key}
    return None


class GeminiVideoBackend:
    name = GEMINI_BACKEND
    semaphore_kind = "video-gemini"
    subject_to_deadline = True

    def model_name(self, runtime: Runtime) -> str:
        return runtime.configs.image_params.video_gemini_model

    def plan(self, job: VideoJob, runtime: Runtime) -> ParameterPlan:  # noqa: ARG002
        requested = job.requested_parameters()
        return plan_parameters(
            requested,
            requested.keys() - NOT_SENT_BY_SDK.keys(),
            job.from_defaults,
            NOT_SENT_BY_SDK.__getitem__,
        )

    async def generate(
        self, job: VideoJob, destination: Path, runtime: Runtime, deadline: Deadline
    ) -> VideoOutcome:
        client = runtime.clients.require_gemini()
        settings = runtime.settings
        model = self.model_name(runtime)
        config = _config(job)
        slots = runtime.clients.gemini_call_slots

        async def start() -> genai_types.GenerateVideosOperation:
            async with deadline.holding(slots):
                return await client.aio.models.generate_videos(
                    model=model,
                    source=genai_types.GenerateVideosSource(prompt=job.full_prompt),
                    config=config,
                )

        async def read(
            current: genai_types.GenerateVideosOperation,
        ) -> genai_types.GenerateVideosOperation:
            async with deadline.holding(slots):
                return await client.aio.operations.get(current)

        operation = await call_with_retries(
            start,
            translate=translate_google_error,
            backend=GEMINI_BACKEND,
            max_attempts=settings.mv_upstream_max_attempts,
            deadline=deadline,
        )
        logger.info("operation %s started", operation.name)
        while not operation.done:
            await asyncio.sleep(settings.mv_poll_interval_seconds)
            operation = await read_status_tolerantly(
                read,
                operation,
                translate=translate_google_error,
                backend=GEMINI_BACKEND,
                job=f"operation {operation.name}",
            )
        debug.log_video_generation_result(operation)
        uri = _finished_video_uri(operation)
        written = await download_output(
            runtime,
            uri,
            destination,
            backend=GEMINI_BACKEND,
            headers=_key_header(uri, settings.gemini_api_key, settings.google_gemini_base_url),
            deadline=deadline,
        )
        return VideoOutcome(written=written, provider_job_id=operation.name)
