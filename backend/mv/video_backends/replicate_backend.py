"""Veo 3.1 on Replicate: one prediction per clip, the result streamed to disk.

A reference image goes to the model's `reference_images` input as a `data:` URI, so there is
no upload round trip and no temporary file to clean up.
"""

import base64
from pathlib import Path

from backend.mv import debug
from backend.mv.downloads import download_output
from backend.mv.metadata import ParameterPlan, plan_parameters
from backend.mv.providers import REPLICATE_BACKEND
from backend.mv.replicate_runner import run_prediction
from backend.mv.runtime import Runtime
from backend.mv.upstream import Deadline
from backend.mv.video_backends.base import VideoJob, VideoOutcome


class ReplicateVideoBackend:
    name = REPLICATE_BACKEND
    semaphore_kind = "video-replicate"
    subject_to_deadline = True

    def model_name(self, runtime: Runtime) -> str:
        return runtime.configs.image_params.video_model

    def plan(self, job: VideoJob, runtime: Runtime) -> ParameterPlan:
        model = self.model_name(runtime)
        return plan_parameters(
            job.requested_parameters(),
            {*runtime.configs.image_params.video_model_inputs, "reference_image"},
            job.from_defaults,
            lambda name: f"{model} on Replicate has no {name} input",
        )

    async def generate(
        self, job: VideoJob, destination: Path, runtime: Runtime, deadline: Deadline
    ) -> VideoOutcome:
        client = runtime.clients.require_replicate()
        plan = self.plan(job, runtime)
        model_input = {
            "prompt": job.full_prompt,
            **{name: value for name, value in plan.used.items() if name != "reference_image"},
        }
        if job.reference_image is not None:
            encoded = base64.b64encode(job.reference_image.data).decode("ascii")
            model_input["reference_images"] = [
                f"data:{job.reference_image.mime_type};base64,{encoded}"
            ]
        settings = runtime.settings
        prediction, output_url = await run_prediction(
            client,
            model=self.model_name(runtime),
            model_input=model_input,
            deadline=deadline,
            poll_interval_seconds=settings.mv_poll_interval_seconds,
            max_attempts=settings.mv_upstream_max_attempts,
            backend=REPLICATE_BACKEND,
        )
        debug.log_video_generation_result(prediction)
        written = await download_output(
            runtime, output_url, destination, backend=REPLICATE_BACKEND, deadline=deadline
        )
        return VideoOutcome(written=written, provider_job_id=prediction.id)
