"""Veo operations on the Gemini Developer API: start, poll until done, find the clip.

The SDK starts a long-running operation (`predictLongRunning`); it is polled without
blocking until the caller's deadline. The Developer API offers no way to cancel an
operation, so one still running at the deadline is left to finish upstream (and is billed).
"""

import asyncio
import logging

from google import genai
from google.genai import types as genai_types
from yarl import URL

from backend.mv.errors import ContentPolicyViolation, GenerationFailed
from backend.mv.providers import JobPolicy, Provider
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.downloads import same_origin
from backend.mv.providers.gemini.errors import GEMINI_ERRORS
from backend.mv.providers.retries import call_with_retries, read_status_tolerantly
from backend.mv.providers.tracking import UpstreamTracker

logger = logging.getLogger(__name__)

CALL_SLOTS = 32
"""Short Gemini video calls (create, status reads) at once per process; keeps 200 polls
from landing in one burst on the event loop."""


async def run_video_operation(
    client: genai.Client,
    *,
    model: str,
    prompt: str,
    config: genai_types.GenerateVideosConfig,
    deadline: Deadline,
    policy: JobPolicy,
    slots: asyncio.Semaphore,
    tracker: UpstreamTracker,
) -> genai_types.GenerateVideosOperation:
    """Start the operation (or take up the recorded one) and poll it until done; each call
    holds one of `slots`."""

    async def start() -> genai_types.GenerateVideosOperation:
        async with deadline.holding(slots):
            return await client.aio.models.generate_videos(
                model=model, source=genai_types.GenerateVideosSource(prompt=prompt), config=config
            )

    async def read(
        current: genai_types.GenerateVideosOperation,
    ) -> genai_types.GenerateVideosOperation:
        async with deadline.holding(slots):
            return await client.aio.operations.get(current)

    if tracker.resume_id is not None:
        operation = genai_types.GenerateVideosOperation(name=tracker.resume_id)
        logger.info("resuming operation %s", operation.name)
    else:
        operation = await call_with_retries(
            start,
            errors=GEMINI_ERRORS,
            backend=Provider.GEMINI,
            max_attempts=policy.max_attempts,
            deadline=deadline,
        )
        logger.info("operation %s started", operation.name)
        if operation.name:
            await tracker.created(operation.name)
    while not operation.done:
        await asyncio.sleep(policy.poll_interval_seconds)
        operation = await read_status_tolerantly(
            read,
            operation,
            errors=GEMINI_ERRORS,
            backend=Provider.GEMINI,
            job=f"operation {operation.name}",
        )
    return operation


def finished_video_uri(operation: genai_types.GenerateVideosOperation) -> str:
    """The clip's download URI from a done operation, or the error the operation carries."""
    if operation.error:
        message = str(operation.error.get("message", operation.error))
        raise GenerationFailed(f"The model failed: {message}", backend=Provider.GEMINI)
    response = operation.response or operation.result
    if response is not None and response.rai_media_filtered_count:
        reasons = "; ".join(response.rai_media_filtered_reasons or []) or "no reason given"
        raise ContentPolicyViolation(
            f"The provider's safety filter removed the video: {reasons}", backend=Provider.GEMINI
        )
    videos = (response.generated_videos if response else None) or []
    uri = videos[0].video.uri if videos and videos[0].video else None
    if not uri:
        raise GenerationFailed("The operation finished without a video", backend=Provider.GEMINI)
    return uri


def download_headers(uri: str, api_key: str, base_url: str) -> dict[str, str] | None:
    """The API key goes only to the Gemini API itself, over HTTPS; a clip URI on any other
    host is fetched without it."""
    if URL(uri, encoded=True).scheme == "https" and same_origin(uri, base_url):
        return {"x-goog-api-key": api_key}
    return None
