"""HTTP layer of the music-video endpoints: parse, call one domain function, shape the answer.

Every error answer has the shape documented in DESIGN.md (`ErrorResponse` below); the
status codes each route can give are listed in its OpenAPI entry.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from backend.dependencies import RuntimeDep
from backend.middleware import CALLER_STATE
from backend.mv.idempotency import MAX_KEY_LENGTH, request_fingerprint
from backend.mv.image_generator import (
    GenerateCharacterReferenceRequest,
    GenerateCharacterReferenceResponse,
    generate_character_reference_image,
)
from backend.mv.references import find_reference
from backend.mv.runtime import Runtime
from backend.mv.scene_generator import CreateScenesRequest, CreateScenesResponse, generate_scenes
from backend.mv.video_generator import (
    GenerateVideoRequest,
    GenerateVideoResponse,
    VideoInfo,
    find_clip,
    generate_video,
    video_info,
)
from backend.routers.video_files import ClipResponse, check_range, clip_response


class ErrorResponse(BaseModel):
    """The one error shape, on every route and status."""

    error: str = Field(examples=["Content refused by the provider's safety filter"])
    error_code: str = Field(examples=["CONTENT_POLICY_VIOLATION"])
    message: str
    backend_used: str | None = None
    timestamp: str = Field(examples=["2026-01-01T00:00:00Z"])
    request_id: str
    details: list[Any] = Field(default_factory=list)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Invalid request (`VALIDATION_ERROR`, per-field `details`)",
        401: "Missing or wrong API key (`UNAUTHORIZED`, only when MV_API_KEYS is set)",
        404: "Unknown id (`NOT_FOUND`)",
        409: "Conflict (`CONFLICT`)",
        413: "Body or reference image too large (`PAYLOAD_TOO_LARGE`)",
        416: "Range cannot be satisfied (`RANGE_NOT_SATISFIABLE`)",
        422: "Refused by the provider's safety filter (`CONTENT_POLICY_VIOLATION`)",
        429: "Provider rate limit (`RATE_LIMIT_EXCEEDED`, with Retry-After)",
        502: "Provider failed (`GENERATION_FAILED`) or unreachable (`BACKEND_ERROR`)",
        503: "Provider key missing or rejected (`BACKEND_NOT_CONFIGURED`)",
        504: "Generation exceeded MV_GENERATION_TIMEOUT_SECONDS (`GENERATION_TIMEOUT`)",
    }
    return {
        status: {"model": ErrorResponse, "description": descriptions[status]} for status in statuses
    }


router = APIRouter(
    prefix="/api/mv",
    tags=["music video"],
    responses={
        "4XX": {"model": ErrorResponse, "description": "Client error, in the error shape"},
        "5XX": {"model": ErrorResponse, "description": "Server or provider error"},
    },
)

GENERATION_ERRORS = _errors(400, 401, 409, 413, 422, 429, 502, 503, 504)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=MAX_KEY_LENGTH,
        description=(
            "Send the same key again (with the same body) to get the first answer back "
            "instead of paying twice; kept 24 h. Another body with a used key is a 409."
        ),
    ),
]


async def _answer_once(
    http_request: Request,
    runtime: Runtime,
    endpoint: str,
    key: str | None,
    request: BaseModel,
    produce: Callable[[], Awaitable[BaseModel]],
) -> dict[str, Any]:
    """Run `produce` once per Idempotency-Key and caller (or every time without a key)."""

    async def produce_json() -> dict[str, Any]:
        return (await produce()).model_dump(mode="json", by_alias=True)

    if key is None:
        return await produce_json()
    fingerprint = await anyio.to_thread.run_sync(
        request_fingerprint, request.model_dump(mode="json")
    )
    owner = getattr(http_request.state, CALLER_STATE, "")
    return await runtime.idempotency.run_once(endpoint, key, fingerprint, produce_json, owner=owner)


@router.post(
    "/create_scenes",
    response_model=CreateScenesResponse,
    summary="Write scene prompts for a video idea (v1)",
    responses=GENERATION_ERRORS,
)
async def create_scenes(
    request: CreateScenesRequest,
    runtime: RuntimeDep,
    http_request: Request,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Gemini writes `number_of_scenes` self-contained Veo prompts for the idea and character.

    Fields left out take their defaults from `parameters.yaml` (the response's
    `metadata.defaults_applied` lists them). The scenes are also stored as `scenes.json` and
    `scenes.md` in a folder of their own (`output_dir`, or a fresh `scene_set_id`).
    Typical time: 10-60 s live, `MV_MOCK_DELAY_SECONDS` in mock mode.
    """
    return await _answer_once(
        http_request,
        runtime,
        "create_scenes",
        idempotency_key,
        request,
        lambda: generate_scenes(request, runtime),
    )


@router.post(
    "/generate_character_reference",
    response_model=GenerateCharacterReferenceResponse,
    summary="Draw the character reference image (v2)",
    responses=GENERATION_ERRORS,
)
async def generate_character_reference(
    request: GenerateCharacterReferenceRequest,
    runtime: RuntimeDep,
    http_request: Request,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Imagen 4 on Replicate draws the character; the image is stored and returned.

    The answer carries the image as base64 and an `image_id`: pass that id to
    `generate_video` as `reference_image_id` instead of sending the image back. Choices the
    model cannot take are refused with 400 before any money is spent; parameters the model
    has no input for are listed in `metadata.parameters_not_applied`.
    Typical time: 5-30 s live.
    """
    return await _answer_once(
        http_request,
        runtime,
        "generate_character_reference",
        idempotency_key,
        request,
        lambda: generate_character_reference_image(
            request, runtime, client_gone=http_request.is_disconnected
        ),
    )


@router.get(
    "/get_character_reference/{image_id}",
    response_class=FileResponse,
    summary="The stored character reference image",
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The image"},
        **_errors(401, 404),
    },
)
async def get_character_reference(image_id: str, runtime: RuntimeDep) -> FileResponse:
    """Serves the image stored under `image_id` with its Content-Type (PNG or JPEG)."""
    stored = await find_reference(image_id, runtime.output_root)
    return FileResponse(stored.path, media_type=stored.content_type)


@router.post(
    "/generate_video",
    response_model=GenerateVideoResponse,
    summary="Render one video clip for one scene (v3)",
    responses={**GENERATION_ERRORS, **_errors(404)},
)
async def create_video(
    request: GenerateVideoRequest,
    runtime: RuntimeDep,
    http_request: Request,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Veo 3.1 renders one clip (4, 6 or 8 s) for `prompt`; call once per scene, concurrently.

    The answer arrives when the clip is stored (20-400 s live; set a client timeout of at
    least 600 s). Give the character with `reference_image_id` (from
    generate_character_reference) or `reference_image_base64`, not both. `backend` picks
    `replicate` (default) or `gemini`; parameters a backend cannot take are listed in
    `metadata.parameters_not_applied`. Fetch the clip from `video_url`.
    """
    return await _answer_once(
        http_request,
        runtime,
        "generate_video",
        idempotency_key,
        request,
        lambda: generate_video(request, runtime, client_gone=http_request.is_disconnected),
    )


CLIP_PATH = "/get_video/{video_id}"


@router.get(
    CLIP_PATH,
    operation_id="get_video",
    response_class=ClipResponse,
    summary="Download a clip (Range requests supported)",
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The whole clip"},
        206: {"content": {"video/mp4": {}}, "description": "The requested byte range"},
        **_errors(401, 404, 416),
    },
)
async def get_video(video_id: str, request: Request, runtime: RuntimeDep) -> ClipResponse:
    """Streams the clip as `video/mp4` with `Accept-Ranges`, `ETag` and `Last-Modified`.

    `Range: bytes=a-b` answers 206 with that part; a range past the end is a 416. HEAD gives
    the headers (size, ETag) without the body.
    """
    stored = await find_clip(video_id, runtime.output_root)
    check_range(request.headers.get("range"), stored.size_bytes or 0)
    return clip_response(stored.path, etag=stored.sidecar.get("sha256"))


router.add_api_route(
    CLIP_PATH,
    get_video,
    methods=["HEAD"],
    operation_id="head_video",
    response_class=ClipResponse,
    summary="A clip's headers (size, ETag) without the body",
    responses=_errors(401, 404, 416),
)


@router.get(
    "/get_video/{video_id}/info",
    response_model=VideoInfo,
    summary="A clip's size, creation time and stored metadata",
    responses=_errors(401, 404),
)
async def get_video_info(video_id: str, runtime: RuntimeDep) -> VideoInfo:
    """Everything known about a clip without downloading it. `exists` is false only when
    the metadata survives but the clip file is gone."""
    return await video_info(video_id, runtime.output_root)
