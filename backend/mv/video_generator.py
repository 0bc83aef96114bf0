"""v3: one video clip per request, from the chosen backend, stored under a fresh UUID.

Everything that costs money to get wrong is checked first: choices against
`image_params.yaml`, the rules template, the reference image (size, then format). The clip
streams to `<outputs>/videos/<video_id>.mp4` through a temporary file, beside a
`<video_id>.json` sidecar; a per-backend cap bounds the upstream jobs in flight.
"""

import contextlib
import logging
import time
from pathlib import Path
from string import Formatter
from typing import Annotated, Any, Literal

import anyio
from pydantic import BaseModel, Field

from backend.mv import debug
from backend.mv.errors import NotFound, ValidationFailed, problem
from backend.mv.fields import CheckedText, apply_defaults, choice_problems
from backend.mv.metadata import GenerationMetadata, generation_fields
from backend.mv.reference_images import decode_reference_image, load_stored_reference
from backend.mv.runtime import ClientGone, Runtime, client_left
from backend.mv.storage import (
    find_sidecar,
    new_artifact_id,
    write_json_atomic,
)
from backend.mv.upstream import Deadline
from backend.mv.video_backends import DEFAULT_BACKEND, get_video_backend
from backend.mv.video_backends.base import ReferenceImage, VideoJob

logger = logging.getLogger(__name__)

VIDEO_FOLDER = "videos"
VIDEO_URL_PREFIX = "/api/mv/get_video/"
MAX_BASE64_CHARS = 16 * 1024 * 1024


class GenerateVideoRequest(BaseModel):
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
        default=None, max_length=16, description="16:9 or 9:16; default from image_params.yaml"
    )
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="For reproducibility")
    duration: int | None = Field(default=None, ge=1, le=60, description="Seconds: 4, 6 or 8")
    generate_audio: bool | None = Field(default=None, description="Default true")
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
    backend: Literal["replicate", "gemini", "mock"] = Field(
        default=DEFAULT_BACKEND, description="replicate (default), gemini, or mock (no cost)"
    )


class VideoMetadata(GenerationMetadata):
    prompt: str
    file_size_bytes: int
    sha256: str


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


def _resolve(request: GenerateVideoRequest, runtime: Runtime) -> tuple[dict[str, Any], list[str]]:
    params = runtime.configs.image_params
    defaults = {
        "aspect_ratio": params.video_aspect_ratio,
        "duration": params.video_duration,
        "generate_audio": params.video_generate_audio,
    }
    resolved, defaults_applied = apply_defaults(request, defaults)
    with_reference = request.reference_image_base64 or request.reference_image_id
    resolved["person_generation"] = (
        params.video_person_generation_with_reference
        if with_reference
        else params.video_person_generation
    )
    defaults_applied.insert(0, "person_generation")
    problems = choice_problems(
        resolved,
        {
            "aspect_ratio": params.video_allowed.aspect_ratio,
            "duration": params.video_allowed.duration,
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


def _full_prompt(request: GenerateVideoRequest, aspect_ratio: str, runtime: Runtime) -> str:
    template = request.video_rules_template or runtime.configs.image_params.video_rules_template
    try:
        rules = _render_rules(template, aspect_ratio)
    except ValueError as exc:
        message = "may only use the placeholder {aspect_ratio}; write other braces as {{ }}"
        raise ValidationFailed.about("video_rules_template", message) from exc
    return f"{request.prompt}\n\n{rules}"


async def _reference_image(
    request: GenerateVideoRequest, runtime: Runtime
) -> ReferenceImage | None:
    if request.reference_image_base64 is not None:
        return await decode_reference_image(
            request.reference_image_base64, runtime.settings.mv_max_reference_image_bytes
        )
    if request.reference_image_id is not None:
        return await load_stored_reference(request.reference_image_id, runtime.output_root)
    return None


def videos_folder(output_root: Path) -> Path:
    return output_root / VIDEO_FOLDER


async def generate_video(
    request: GenerateVideoRequest, runtime: Runtime, *, client_gone: ClientGone | None = None
) -> GenerateVideoResponse:
    """Render one clip and store it; raises the service's errors for every failure.

    The clip is stored even when the client has gone meanwhile (the sidecar records it),
    so a paid result is never thrown away.
    """
    started = time.monotonic()
    debug.log_video_request_args(request)
    resolved, defaults_applied = _resolve(request, runtime)
    debug.log_video_defaults_applied({name: resolved[name] for name in defaults_applied})
    backend = get_video_backend(request.backend, mock_mode=runtime.settings.mv_mock_mode)
    job = VideoJob(
        prompt=request.prompt,
        full_prompt=_full_prompt(request, resolved["aspect_ratio"], runtime),
        negative_prompt=request.negative_prompt,
        seed=request.seed,
        reference_image=await _reference_image(request, runtime),
        from_defaults=frozenset(defaults_applied),
        **resolved,
    )
    debug.log_video_prompt(job.full_prompt)
    model = backend.model_name(runtime)
    debug.log_video_backend_selected(backend.name, model)
    plan = backend.plan(job, runtime)

    video_id = new_artifact_id()
    folder = videos_folder(runtime.output_root)
    await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
    clip_path = folder / f"{video_id}.mp4"
    async with runtime.limiter.slot(backend.semaphore_kind) as ticket:
        deadline = Deadline(runtime.settings.mv_generation_timeout_seconds)
        enforced = (
            deadline.enforced(backend.name)
            if backend.subject_to_deadline
            else contextlib.nullcontext()
        )
        async with enforced:
            outcome = await backend.generate(job, clip_path, runtime, deadline)

    metadata = VideoMetadata(
        prompt=request.prompt,
        **generation_fields(
            backend=backend.name,
            model=model,
            plan=plan,
            defaults_applied=defaults_applied,
            started=started,
            queue_wait_seconds=ticket.waited_seconds,
        ),
        file_size_bytes=outcome.written.size_bytes,
        sha256=outcome.written.sha256,
    )
    sidecar = {
        "video_id": video_id,
        "file_name": clip_path.name,
        "created_at": metadata.generation_timestamp,
        "full_prompt": job.full_prompt,
        "provider_job_id": outcome.provider_job_id,
        "client_disconnected": await client_left(client_gone),
        **metadata.model_dump(mode="json"),
    }
    await write_json_atomic(folder / f"{video_id}.json", sidecar, exclusive=True)
    debug.log_video_generation_result(
        {"video_id": video_id, "seconds": metadata.processing_time_seconds}
    )
    return GenerateVideoResponse(
        video_id=video_id,
        video_path=str(clip_path),
        video_url=f"{VIDEO_URL_PREFIX}{video_id}",
        metadata=metadata,
    )


class StoredVideo(BaseModel):
    video_id: str
    path: Path
    sidecar: dict[str, Any]
    size_bytes: int | None
    """None when the sidecar survives but the clip is gone."""


async def find_video(raw_id: str, output_root: Path) -> StoredVideo:
    """The clip and sidecar for an id; a malformed id never touches the filesystem (404)."""
    folder = videos_folder(output_root)
    video_id, sidecar = await find_sidecar(folder, raw_id, "video")
    path = folder / f"{video_id}.mp4"
    try:
        size_bytes: int | None = (await anyio.Path(path).stat()).st_size
    except FileNotFoundError:
        size_bytes = None
    return StoredVideo(video_id=video_id, path=path, sidecar=sidecar, size_bytes=size_bytes)


async def find_clip(raw_id: str, output_root: Path) -> StoredVideo:
    """Like `find_video`, but a clip that is gone is a 404 too."""
    stored = await find_video(raw_id, output_root)
    if stored.size_bytes is None:
        raise NotFound(f"The clip for video {stored.video_id} is gone")
    return stored


async def video_info(raw_id: str, output_root: Path) -> VideoInfo:
    stored = await find_video(raw_id, output_root)
    return VideoInfo(
        video_id=stored.video_id,
        file_size_bytes=stored.size_bytes or 0,
        created_at=str(stored.sidecar.get("created_at", "")),
        exists=stored.size_bytes is not None,
        metadata=stored.sidecar,
    )
