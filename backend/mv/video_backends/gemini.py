"""Veo through the Gemini Developer API (google-genai 2.x; 3.x refuses video in this mode).

The clip's `uri` is streamed into the store with aiohttp: the SDK's `files.download` would
read the whole clip into memory. In Developer API mode the SDK refuses `seed` and
`generate_audio` before sending anything, so they are reported in `parameters_not_applied`
instead; Veo 3.1 there always renders audio.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

from google import genai
from google.genai import types as genai_types

from backend.mv import debug
from backend.mv.params import ParameterPlan, plan_parameters
from backend.mv.providers import JobPolicy, Provider, require_client
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.downloads import Downloader
from backend.mv.providers.gemini.videos import (
    CALL_SLOTS,
    download_headers,
    finished_video_uri,
    run_video_operation,
)
from backend.mv.providers.tracking import UpstreamTracker
from backend.mv.storage.base import ArtifactStore
from backend.mv.video_backends.base import VideoJob, VideoOutcome

SENT_AS = {
    "aspect_ratio": "aspect_ratio",
    "duration": "duration_seconds",
    "person_generation": "person_generation",
    "negative_prompt": "negative_prompt",
}
"""Each job parameter this backend sends, by its `GenerateVideosConfig` name. Anything else
is reported in `parameters_not_applied`, so a new parameter is never claimed as used here
until it is added to this map."""
NOT_SENT_BY_SDK = {
    "seed": "the Gemini Developer API does not take a seed (google-genai refuses it)",
    "generate_audio": (
        "the Gemini Developer API does not take generate_audio (google-genai refuses it); "
        "Veo 3.1 there always renders audio"
    ),
}


def _not_sent_reason(name: str) -> str:
    return NOT_SENT_BY_SDK.get(name, f"the Gemini backend does not send {name}")


async def _config(job: VideoJob, used: dict[str, Any]) -> genai_types.GenerateVideosConfig:
    reference_images = None
    if job.reference_image is not None:
        reference_images = [
            genai_types.VideoGenerationReferenceImage(
                image=genai_types.Image(
                    image_bytes=await job.reference_image.load(),
                    mime_type=job.reference_image.mime_type,
                ),
                reference_type=genai_types.VideoGenerationReferenceType.ASSET,
            )
        ]
    return genai_types.GenerateVideosConfig(
        number_of_videos=1,
        reference_images=reference_images,
        **{SENT_AS[name]: value for name, value in used.items() if name in SENT_AS},
    )


@dataclass
class GeminiVideoBackend:
    client: genai.Client | None
    downloader: Downloader
    model: str
    policy: JobPolicy
    api_key: str
    base_url: str
    """The Gemini API's own origin: the only host the key is sent to."""
    call_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CALL_SLOTS))
    name: ClassVar[Provider] = Provider.GEMINI

    def plan(self, job: VideoJob) -> ParameterPlan:
        return plan_parameters(
            job.requested_parameters(),
            {*SENT_AS, "reference_image"},
            job.from_defaults,
            _not_sent_reason,
        )

    async def generate(
        self,
        job: VideoJob,
        plan: ParameterPlan,
        store: ArtifactStore,
        key: str,
        tracker: UpstreamTracker,
    ) -> VideoOutcome:
        client = require_client(self.client, Provider.GEMINI, "GEMINI_API_KEY")
        config = await _config(job, plan.used)
        deadline = Deadline(self.policy.timeout_seconds)
        async with deadline.enforced(Provider.GEMINI):
            operation = await run_video_operation(
                client,
                model=self.model,
                prompt=job.full_prompt,
                config=config,
                deadline=deadline,
                policy=self.policy,
                slots=self.call_slots,
                tracker=tracker,
            )
            debug.log_video_provider_response(operation)
            uri = finished_video_uri(operation)
            await tracker.stage("downloading")
            written = await self.downloader.fetch(
                uri,
                store,
                key,
                backend=Provider.GEMINI,
                deadline=deadline,
                headers=download_headers(uri, self.api_key, self.base_url),
            )
        return VideoOutcome(written=written, provider_job_id=operation.name)
