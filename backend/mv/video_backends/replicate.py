"""Veo 3.1 on Replicate: one prediction per clip, the result streamed into the store.

A reference image goes to the model's `reference_images` input as a `data:` URI when it is
small and as an uploaded file's URL when it is large (`providers.replicate.files`); the
upload counts against the clip's deadline.
"""

from collections.abc import Collection
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import ClassVar

import replicate

from backend.mv import debug
from backend.mv.params import ParameterPlan, plan_parameters
from backend.mv.providers import JobPolicy, Provider, require_client
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.downloads import Downloader
from backend.mv.providers.replicate.files import reference_image_url
from backend.mv.providers.replicate.predictions import predict_into_store
from backend.mv.providers.tracking import UpstreamTracker
from backend.mv.storage.base import ArtifactStore
from backend.mv.video_backends.base import VideoJob, VideoOutcome


@dataclass
class ReplicateVideoBackend:
    client: replicate.Client | None
    downloader: Downloader
    model: str
    model_inputs: Collection[str]
    """The model's inputs from `video_params.yaml`; a reference image always has one."""
    policy: JobPolicy
    name: ClassVar[Provider] = Provider.REPLICATE

    def plan(self, job: VideoJob) -> ParameterPlan:
        return plan_parameters(
            job.requested_parameters(),
            {*self.model_inputs, "reference_image"},
            job.from_defaults,
            lambda name: f"{self.model} on Replicate has no {name} input",
        )

    async def generate(
        self,
        job: VideoJob,
        plan: ParameterPlan,
        store: ArtifactStore,
        key: str,
        tracker: UpstreamTracker,
    ) -> VideoOutcome:
        client = require_client(self.client, Provider.REPLICATE, "REPLICATE_API_TOKEN")
        model_input = {
            "prompt": job.full_prompt,
            **{name: value for name, value in plan.used.items() if name != "reference_image"},
        }
        deadline = Deadline(self.policy.timeout_seconds)
        async with AsyncExitStack() as reference_kept:
            if job.reference_image is not None and tracker.resume_id is None:
                async with deadline.enforced(Provider.REPLICATE):
                    url = await reference_kept.enter_async_context(
                        reference_image_url(
                            client,
                            job.reference_image,
                            deadline=deadline,
                            max_attempts=self.policy.max_attempts,
                        )
                    )
                model_input["reference_images"] = [url]
            prediction, written = await predict_into_store(
                client,
                self.downloader,
                model=self.model,
                model_input=model_input,
                policy=self.policy,
                store=store,
                key=key,
                log_response=debug.log_video_provider_response,
                tracker=tracker,
                deadline=deadline,
            )
        return VideoOutcome(written=written, provider_job_id=prediction.id)
