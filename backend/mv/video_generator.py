"""v3: one video clip per request, from the chosen backend, stored under a fresh UUID.

Everything that costs money to get wrong is checked first: choices against
`video_params.yaml`, the rules template, the reference image (size, then format). The clip
streams to `videos/<video_id>.mp4` in the store, beside a `<video_id>.json` sidecar; a
per-backend cap bounds the upstream jobs in flight.
"""

import logging
import time
from collections.abc import Callable
from string import Formatter
from typing import Annotated, Any

from pydantic import BaseModel, Field

from backend.jobs.webhooks.targets import WebhookFields
from backend.mv import debug
from backend.mv.configuration import VideoParams
from backend.mv.errors import NotFound, ValidationFailed, problem
from backend.mv.limiter import Slots
from backend.mv.params import (
    CheckedText,
    GenerationMetadata,
    SidecarFields,
    apply_defaults,
    choice_problems,
    generation_fields,
    info_fields,
)
from backend.mv.providers import Provider
from backend.mv.providers.tracking import UNTRACKED, UpstreamTracker
from backend.mv.reference_image_input import check_base64_reference, find_stored_reference
from backend.mv.storage.base import ArtifactStore, find_sidecar, keep_paid_result
from backend.mv.storage.identity import new_artifact_id
from backend.mv.video_backends import DEFAULT_BACKEND, VideoBackendName, VideoBackends
from backend.mv.video_backends.base import ReferenceImage, VideoJob

logger = logging.getLogger(__name__)

VIDEO_FOLDER = "videos"
MAX_BASE64_CHARS = 16 * 1024 * 1024


class GenerateVideoRequest(WebhookFields):
    prompt: Annotated[
        str,
        Field(
            max_length=4000,
            description="The scene to render; reaches the model verbatim, rules appended",
            examples=["A silver robot walks through a neon city at sunset, slow tracking shot"],
        ),
        CheckedText,
    ]
    negative_prompt: Annotated[
        str | None,
        Field(max_length=1000, description="What the clip must not show"),
        CheckedText,
    ] = None
    aspect_ratio: str | None = Field(
        default=None,
        max_length=16,
        description="Default `aspect_ratio`, allowed `allowed.aspect_ratio` (video_params.yaml)",
    )
    seed: int | None = Field(
        default=None, ge=0, le=2**32 - 1, strict=True, description="For reproducibility"
    )
    duration: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=60,
        description="Seconds; default `duration`, allowed `allowed.duration` (video_params.yaml)",
    )
    generate_audio: bool | None = Field(
        default=None, strict=True, description="Default `generate_audio` in video_params.yaml"
    )
    reference_image_base64: str | None = Field(
        default=None,
        max_length=MAX_BASE64_CHARS,
        description=(
            "A PNG, JPEG or WebP character image as base64 (a data: URI is fine). Prefer "
            "reference_image_id: it avoids sending the image again."
        ),
    )
    reference_image_id: str | None = Field(
        default=None,
        max_length=64,
        description="image_id of a stored character reference (from generate_character_reference)",
    )
    video_rules_template: Annotated[
        str | None,
        Field(
            max_length=2000,
            description="Rules appended to the prompt instead of the configured ones; may use "
            "{aspect_ratio}",
        ),
        CheckedText,
    ] = None
    backend: VideoBackendName = Field(
        default=DEFAULT_BACKEND, description="replicate (default), gemini, or mock (no cost)"
    )


class VideoMetadata(GenerationMetadata):
    prompt: str
    file_size_bytes: int
    sha256: str
    has_reference_image: bool = Field(description="Whether a reference image reached the model")
    is_mock: bool = Field(description="True when the mock provider made the clip (no cost)")


class VideoSidecar(SidecarFields, VideoMetadata):
    video_id: str
    full_prompt: str
    provider_job_id: str | None


class GenerateVideoResponse(BaseModel):
    video_id: str = Field(description="UUID of the stored clip")
    video_path: str = Field(description="Absolute path of the clip on the server")
    video_url: str = Field(description="Where GET serves the clip (Range requests supported)")
    metadata: VideoMetadata


class VideoInfo(BaseModel):
    video_id: str
    file_size_bytes: int
    created_at: str
    exists: bool
    metadata: dict[str, Any]


def _resolve(
    request: GenerateVideoRequest, params: VideoParams
) -> tuple[dict[str, Any], list[str]]:
    defaults = {
        "aspect_ratio": params.aspect_ratio,
        "duration": params.duration,
        "generate_audio": params.generate_audio,
    }
    resolved, defaults_applied = apply_defaults(request, defaults)
    with_reference = request.reference_image_base64 or request.reference_image_id
    resolved["person_generation"] = (
        params.person_generation_with_reference if with_reference else params.person_generation
    )
    defaults_applied.insert(0, "person_generation")
    problems = choice_problems(
        resolved,
        {
            "aspect_ratio": params.allowed.aspect_ratio,
            "duration": params.allowed.duration,
        },
    )
    if request.reference_image_base64 is not None and request.reference_image_id is not None:
        problems.append(
            problem(
                "reference_image_id",
                "send reference_image_base64 or reference_image_id, not both",
            )
        )
    if problems:
        raise ValidationFailed.from_problems(problems)
    return resolved, defaults_applied


def _render_rules(template: str, aspect_ratio: str) -> str:
    """Fill bare `{aspect_ratio}` placeholders only.

    `str.format` would also run attribute and item lookups (`{aspect_ratio.upper}`) and
    format specs (`{aspect_ratio:>99999999}` pads to any size) from client text, so anything
    but the bare placeholder is refused (ValueError).
    """
    parts = []
    for literal, field_name, format_spec, conversion in Formatter().parse(template):
        parts.append(literal)
        if field_name is None:
            continue
        if field_name != "aspect_ratio" or format_spec or conversion:
            raise ValueError(f"placeholder {field_name!r} is not allowed")
        parts.append(aspect_ratio)
    return "".join(parts)


def _full_prompt(request: GenerateVideoRequest, aspect_ratio: str, params: VideoParams) -> str:
    template = request.video_rules_template or params.rules_template
    try:
        rules = _render_rules(template, aspect_ratio)
    except ValueError as exc:
        message = "may only use the placeholder {aspect_ratio}; write other braces as {{ }}"
        raise ValidationFailed.about("video_rules_template", message) from exc
    return f"{request.prompt}\n\n{rules}"


async def _reference_image(
    request: GenerateVideoRequest, store: ArtifactStore, max_reference_image_bytes: int
) -> ReferenceImage | None:
    """Checked now (400, 404, 413 before any wait); its bytes are loaded when sent."""
    if request.reference_image_base64 is not None:
        return await check_base64_reference(
            request.reference_image_base64, max_reference_image_bytes
        )
    if request.reference_image_id is not None:
        return await find_stored_reference(request.reference_image_id, store)
    return None


async def check_video_request(
    request: GenerateVideoRequest,
    *,
    store: ArtifactStore,
    params: VideoParams,
    max_reference_image_bytes: int,
) -> None:
    """What `generate_video` refuses before any wait (400, 404, 413), checked when a job is
    submitted so that an asynchronous request is refused at once."""
    resolved, _ = _resolve(request, params)
    _full_prompt(request, resolved["aspect_ratio"], params)
    await _reference_image(request, store, max_reference_image_bytes)


async def generate_video(
    request: GenerateVideoRequest,
    *,
    backends: VideoBackends,
    store: ArtifactStore,
    limiter: Slots,
    params: VideoParams,
    max_reference_image_bytes: int,
    min_free_bytes: int,
    video_url_for: Callable[[str], str],
    tracker: UpstreamTracker = UNTRACKED,
    video_id: str | None = None,
) -> GenerateVideoResponse:
    """Render one clip and store it; raises the service's errors for every failure.

    `params` (`video_params.yaml`) give defaults, allowed values and the rules template;
    `video_url_for(video_id)` is where the clip will be served. Just before the backend is
    called (mock included, so mock mode answers as live does), the store must be writable
    with `min_free_bytes` free (else 507). The clip is stored even when the client has gone
    meanwhile (the sidecar records it), and once the clip is stored the answer is a 200,
    even if its sidecar could not be written (logged), so a paid result is never thrown
    away. A job passes its `tracker` and the `video_id` it was given, so an attempt after
    a crash resumes the same provider job into the same id.
    """
    if video_id is not None and (stored := await _stored_answer(video_id, store, video_url_for)):
        return stored
    started = time.monotonic()
    debug.log_video_request_args(request)
    resolved, defaults_applied = _resolve(request, params)
    debug.log_video_defaults_applied({name: resolved[name] for name in defaults_applied})
    backend = backends[request.backend]
    job = VideoJob(
        prompt=request.prompt,
        full_prompt=_full_prompt(request, resolved["aspect_ratio"], params),
        negative_prompt=request.negative_prompt,
        seed=request.seed,
        reference_image=await _reference_image(request, store, max_reference_image_bytes),
        from_defaults=frozenset(defaults_applied),
        **resolved,
    )
    debug.log_video_prompt(job.full_prompt)
    debug.log_video_backend_selected(backend.name, backend.model)
    plan = backend.plan(job)

    video_id = video_id or new_artifact_id()
    clip_key = f"{VIDEO_FOLDER}/{video_id}.mp4"
    sidecar_key = f"{VIDEO_FOLDER}/{video_id}.json"
    async with store.publishing(clip_key, sidecar=sidecar_key):
        async with limiter.slot(f"video-{backend.name}") as ticket:
            await store.check_writable(min_free_bytes)
            outcome = await backend.generate(job, plan, store, clip_key, tracker)
        await tracker.stage("storing")

        metadata = VideoMetadata(
            prompt=request.prompt,
            **generation_fields(
                backend=backend.name,
                model=backend.model,
                plan=plan,
                defaults_applied=defaults_applied,
                started=started,
                queue_wait_seconds=ticket.waited_seconds,
                job_id=tracker.job_id,
            ),
            file_size_bytes=outcome.written.size_bytes,
            sha256=outcome.written.sha256,
            has_reference_image=job.reference_image is not None,
            is_mock=backend.name == Provider.MOCK,
        )
        sidecar = VideoSidecar(
            video_id=video_id,
            file_name=f"{video_id}.mp4",
            created_at=metadata.generation_timestamp,
            full_prompt=job.full_prompt,
            provider_job_id=outcome.provider_job_id,
            **metadata.model_dump(),
        )
        await keep_paid_result(
            lambda: store.put_json(sidecar_key, sidecar.model_dump(mode="json"), replace=True),
            what=f"the sidecar of video {video_id}",
        )
    debug.log_video_generation_result(
        {"video_id": video_id, "seconds": metadata.processing_time_seconds}
    )
    return GenerateVideoResponse(
        video_id=video_id,
        video_path=store.uri(clip_key),
        video_url=video_url_for(video_id),
        metadata=metadata,
    )


async def _stored_answer(
    video_id: str, store: ArtifactStore, video_url_for: Callable[[str], str]
) -> GenerateVideoResponse | None:
    """The answer for a clip an earlier attempt of the same job stored whole (clip and
    sidecar) before a crash cut the attempt off: given again, not paid again."""
    clip_key = f"{VIDEO_FOLDER}/{video_id}.mp4"
    sidecar = await store.read_json(f"{VIDEO_FOLDER}/{video_id}.json")
    if sidecar is None or await store.size(clip_key) is None:
        return None
    logger.info("video %s was stored by an earlier attempt; answering from it", video_id)
    return GenerateVideoResponse(
        video_id=video_id,
        video_path=store.uri(clip_key),
        video_url=video_url_for(video_id),
        metadata=VideoMetadata.model_validate(sidecar),
    )


class StoredVideo(BaseModel):
    video_id: str
    key: str
    sidecar: dict[str, Any]
    size_bytes: int | None
    """None when the sidecar survives but the clip is gone."""


async def find_video(raw_id: str, store: ArtifactStore) -> StoredVideo:
    """The clip and sidecar for an id; a malformed id never reaches the store (404)."""
    video_id, sidecar = await find_sidecar(store, VIDEO_FOLDER, raw_id, "video")
    key = f"{VIDEO_FOLDER}/{video_id}.mp4"
    size_bytes = await store.size(key)
    return StoredVideo(video_id=video_id, key=key, sidecar=sidecar, size_bytes=size_bytes)


async def find_clip(raw_id: str, store: ArtifactStore) -> StoredVideo:
    """Like `find_video`, but a clip that is gone is a 404 too."""
    stored = await find_video(raw_id, store)
    if stored.size_bytes is None:
        raise NotFound(f"The clip for video {stored.video_id} is gone")
    return stored


async def video_info(raw_id: str, store: ArtifactStore) -> VideoInfo:
    stored = await find_video(raw_id, store)
    return VideoInfo(video_id=stored.video_id, **info_fields(stored.sidecar, stored.size_bytes))
