"""Veo through the Gemini Developer API (google-genai 2.x; 3.x refuses video in this mode).

The operation is started with the REST body google-genai would send, built off the event
loop (`providers.gemini.videos`), and polled with the SDK. The clip's `uri` is streamed into
the store with aiohttp: the SDK's `files.download` would read the whole clip into memory.
In Developer API mode the SDK refuses `seed` and `generate_audio`, so they are not sent
either and are reported in `parameters_not_applied`; Veo 3.1 there always renders audio.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from google import genai
from google.genai import types as genai_types

from backend.mv import debug
from backend.mv.params import ParameterPlan, plan_parameters
from backend.mv.providers import JobPolicy, Provider, require_client
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.downloads import Downloader
from backend.mv.providers.gemini.videos import (
    CALL_SLOTS,
    VeoRequest,
    build_veo_request,
    download_headers,
    finished_video_uri,
    start_video_operation,
    wait_for_video_operation,
)
from backend.mv.providers.tracking import UpstreamTracker
from backend.mv.storage.base import ArtifactStore
from backend.mv.thread_pools import DECODING
from backend.mv.video_backends.base import VideoJob, VideoOutcome

SENT_AS = {
    "aspect_ratio": "aspectRatio",
    "duration": "durationSeconds",
    "person_generation": "personGeneration",
    "negative_prompt": "negativePrompt",
}
"""Each job parameter this backend sends, by its name in the REST body's `parameters` (the
names google-genai gives `GenerateVideosConfig`'s fields there). Anything else is reported
in `parameters_not_applied`, so a new parameter is never claimed as used here until it is
added to this map."""
NOT_SENT_BY_SDK = {
    "seed": "the Gemini Developer API does not take a seed (google-genai refuses it)",
    "generate_audio": (
        "the Gemini Developer API does not take generate_audio (google-genai refuses it); "
        "Veo 3.1 there always renders audio"
    ),
}


def _not_sent_reason(name: str) -> str:
    return NOT_SENT_BY_SDK.get(name, f"the Gemini backend does not send {name}")


async def _request(job: VideoJob, used: dict[str, Any]) -> VeoRequest:
    """One clip (`sampleCount` 1) with the parameters `used` names, built in a worker
    thread: a reference image's base64 would hold the event loop up."""
    parameters = {
        "sampleCount": 1,
        **{SENT_AS[name]: value for name, value in used.items() if name in SENT_AS},
    }
    reference = None
    if job.reference_image is not None:
        reference = (await job.reference_image.load(), job.reference_image.mime_type)
    return await DECODING.run(build_veo_request, job.full_prompt, parameters, reference)


@dataclass
class GeminiVideoBackend:
    client: genai.Client | None
    session: aiohttp.ClientSession
    """The client's own aiohttp session: the operation's create goes through it."""
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
        deadline = Deadline(self.policy.timeout_seconds)
        async with deadline.enforced(Provider.GEMINI):
            if tracker.resume_id is not None:
                started = genai_types.GenerateVideosOperation(name=tracker.resume_id)
            else:
                started = await start_video_operation(
                    self.session,
                    base_url=self.base_url,
                    api_key=self.api_key,
                    model=self.model,
                    request=await _request(job, plan.used),
                    deadline=deadline,
                    policy=self.policy,
                    slots=self.call_slots,
                )
                await tracker.created(started.name or "")
            operation = await wait_for_video_operation(
                client, started, policy=self.policy, slots=self.call_slots, deadline=deadline
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
