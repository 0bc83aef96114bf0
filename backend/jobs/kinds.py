"""What each job kind is: its request, its lane (the queue that caps it), the checks made
before it is accepted, and the generation it runs.

A new generation endpoint is one more `JobKind` here and one route that submits it.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from backend.jobs.tracker import JobTracker
from backend.mv.assembly.music_video import (
    RENDER_LANE,
    AssembleVideoRequest,
    assemble_video,
    prepare_render,
)
from backend.mv.image_generator import (
    GenerateCharacterReferenceRequest,
    check_image_request,
    generate_character_reference_image,
)
from backend.mv.limiter import Slots
from backend.mv.scene_generator import CreateScenesRequest, check_scenes_request, generate_scenes
from backend.mv.video_generator import GenerateVideoRequest, check_video_request, generate_video

LOCAL_BACKEND = "ffmpeg"
"""The `backend` of jobs that run here, at no provider's cost (and with nothing to cancel
upstream)."""

Runtime = Any
"""`backend.mv.runtime.Runtime` (not imported: the runtime builds the job engine)."""


@dataclass(frozen=True)
class JobRun:
    """What one attempt of a job hands its generation."""

    artifact_id: str
    """The id the job's artifact is stored under, the same in every attempt."""
    tracker: JobTracker
    slots: Slots
    url_path_for: Callable[..., str]

    def url_for(self, route_name: str, parameter: str) -> Callable[[str], str]:
        return lambda artifact_id: self.url_path_for(route_name, **{parameter: artifact_id})


@dataclass(frozen=True)
class JobKind:
    name: str
    """The endpoint's name, and the job's `kind`."""
    request_model: type[BaseModel]
    lane: Callable[[Any, Runtime], str]
    backend: Callable[[Any, Runtime], str]
    check: Callable[[Any, Runtime], Awaitable[None]]
    run: Callable[[Any, Runtime, JobRun], Awaitable[BaseModel]]

    def parse(self, request_json: str) -> BaseModel:
        return self.request_model.model_validate_json(request_json)


async def _check_scenes(request: CreateScenesRequest, runtime: Runtime) -> None:
    configs = runtime.configs
    check_scenes_request(request, configs.parameters, configs.scene_prompts.scene_generation_prompt)


async def _run_scenes(request: CreateScenesRequest, runtime: Runtime, run: JobRun) -> BaseModel:
    configs = runtime.configs
    return await generate_scenes(
        request,
        writer=runtime.scene_writer,
        store=runtime.store,
        limiter=run.slots,
        defaults=configs.parameters,
        prompt_template=configs.scene_prompts.scene_generation_prompt,
        min_free_bytes=runtime.settings.mv_min_free_bytes,
        tracker=run.tracker,
        scene_set_id=run.artifact_id,
    )


async def _check_image(request: GenerateCharacterReferenceRequest, runtime: Runtime) -> None:
    check_image_request(request, runtime.configs.image_params)


async def _run_image(
    request: GenerateCharacterReferenceRequest, runtime: Runtime, run: JobRun
) -> BaseModel:
    configs = runtime.configs
    return await generate_character_reference_image(
        request,
        drawer=runtime.image_drawer,
        store=runtime.store,
        limiter=run.slots,
        params=configs.image_params,
        prompt_template=configs.image_prompts.character_reference_prompt,
        min_free_bytes=runtime.settings.mv_min_free_bytes,
        image_url_for=run.url_for("mv_get_character_reference", "image_id"),
        tracker=run.tracker,
        image_id=run.artifact_id,
    )


async def _check_video(request: GenerateVideoRequest, runtime: Runtime) -> None:
    await check_video_request(
        request,
        store=runtime.store,
        params=runtime.configs.video_params,
        max_reference_image_bytes=runtime.settings.mv_max_reference_image_bytes,
    )


async def _run_video(request: GenerateVideoRequest, runtime: Runtime, run: JobRun) -> BaseModel:
    return await generate_video(
        request,
        backends=runtime.video_backends,
        store=runtime.store,
        limiter=run.slots,
        params=runtime.configs.video_params,
        max_reference_image_bytes=runtime.settings.mv_max_reference_image_bytes,
        min_free_bytes=runtime.settings.mv_min_free_bytes,
        video_url_for=run.url_for("mv_get_video", "video_id"),
        tracker=run.tracker,
        video_id=run.artifact_id,
    )


async def _check_assembly(request: AssembleVideoRequest, runtime: Runtime) -> None:
    await prepare_render(request, runtime.store)


async def _run_assembly(request: AssembleVideoRequest, runtime: Runtime, run: JobRun) -> BaseModel:
    return await assemble_video(
        request,
        store=runtime.store,
        limiter=run.slots,
        render_timeout_seconds=runtime.settings.mv_generation_timeout_seconds,
        min_free_bytes=runtime.settings.mv_min_free_bytes,
        video_url_for=run.url_for("mv_get_video", "video_id"),
        video_id=run.artifact_id,
        on_progress=run.tracker.report,
        job_id=run.tracker.job_id,
    )


KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind(
            name="create_scenes",
            request_model=CreateScenesRequest,
            lane=lambda _request, runtime: f"scenes-{runtime.scene_writer.backend}",
            backend=lambda _request, runtime: runtime.scene_writer.backend,
            check=_check_scenes,
            run=_run_scenes,
        ),
        JobKind(
            name="generate_character_reference",
            request_model=GenerateCharacterReferenceRequest,
            lane=lambda _request, runtime: f"images-{runtime.image_drawer.backend}",
            backend=lambda _request, runtime: runtime.image_drawer.backend,
            check=_check_image,
            run=_run_image,
        ),
        JobKind(
            name="generate_video",
            request_model=GenerateVideoRequest,
            lane=lambda request, runtime: f"video-{runtime.video_backends[request.backend].name}",
            backend=lambda request, runtime: runtime.video_backends[request.backend].name,
            check=_check_video,
            run=_run_video,
        ),
        JobKind(
            name="assemble_video",
            request_model=AssembleVideoRequest,
            lane=lambda _request, _runtime: RENDER_LANE,
            backend=lambda _request, _runtime: LOCAL_BACKEND,
            check=_check_assembly,
            run=_run_assembly,
        ),
    )
}


def lanes(runtime: Runtime) -> dict[str, int]:
    """Every lane this runtime can use, with its cap on running jobs."""
    cap = runtime.settings.mv_max_concurrent_generations
    names = {
        f"scenes-{runtime.scene_writer.backend}",
        f"images-{runtime.image_drawer.backend}",
        *(f"video-{backend.name}" for backend in runtime.video_backends.values()),
    }
    return {
        **dict.fromkeys(sorted(names), cap),
        RENDER_LANE: runtime.settings.mv_max_concurrent_renders,
    }
