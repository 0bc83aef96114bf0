"""HTTP layer of the music-video endpoints: parse, call one domain function, shape the answer.

Every error answer has the shape documented in DESIGN.md (`ErrorResponse`); the status codes
each route can give are listed in its OpenAPI entry, with an example per error code. URLs in
answers are made from the routes' names, so a path is written once, here.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from backend.api.dependencies import (
    ConfigsDep,
    IdempotencyDep,
    ImageDrawerDep,
    LimiterDep,
    SceneWriterDep,
    SettingsDep,
    StoreDep,
    VideoBackendsDep,
)
from backend.api.errors import ErrorResponse, error_responses
from backend.api.json_body import JSONBodyRoute
from backend.api.media import ClipResponse, check_range, clip_response
from backend.api.middleware import CALLER_STATE
from backend.mv.idempotency import MAX_KEY_LENGTH, IdempotencyStore, request_fingerprint
from backend.mv.image_generator import (
    GenerateCharacterReferenceRequest,
    GenerateCharacterReferenceResponse,
    find_reference,
    generate_character_reference_image,
)
from backend.mv.params import Client
from backend.mv.scene_generator import CreateScenesRequest, CreateScenesResponse, generate_scenes
from backend.mv.thread_pools import DECODING
from backend.mv.video_generator import (
    GenerateVideoRequest,
    GenerateVideoResponse,
    VideoInfo,
    find_clip,
    generate_video,
    video_info,
)

router = APIRouter(
    prefix="/api/mv",
    tags=["music video"],
    route_class=JSONBodyRoute,
    responses={
        "4XX": {"model": ErrorResponse, "description": "Client error, in the error shape"},
        "5XX": {"model": ErrorResponse, "description": "Server or provider error"},
    },
)

GENERATION_ERRORS = error_responses(400, 401, 409, 413, 422, 429, 502, 503, 504, 507)

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
    idempotency: IdempotencyStore,
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
    fingerprint = await DECODING.run(request_fingerprint, request.model_dump(mode="json"))
    owner = getattr(http_request.state, CALLER_STATE, "")
    return await idempotency.run_once(endpoint, key, fingerprint, produce_json, owner=owner)


def _client(http_request: Request, idempotency_key: str | None) -> Client:
    """The request's client for the generators. Without an Idempotency-Key, a client that
    leaves while its request waits for a slot has it dropped before anything is paid: nobody
    could collect the result. With one, the work goes on and is kept for the key."""

    async def departed() -> None:
        while (await http_request.receive())["type"] != "http.disconnect":
            pass

    return Client(
        has_left=http_request.is_disconnected,
        departure=departed if idempotency_key is None else None,
    )


def _url_for(http_request: Request, route_name: str, parameter: str) -> Callable[[str], str]:
    """`artifact_id → /api/mv/...`: the path of one of this router's GET routes."""
    return lambda artifact_id: http_request.app.url_path_for(route_name, **{parameter: artifact_id})


@router.post(
    "/create_scenes",
    name="mv_create_scenes",
    response_model=CreateScenesResponse,
    summary="Write scene prompts for a video idea (v1)",
    responses=GENERATION_ERRORS,
)
async def create_scenes(
    request: CreateScenesRequest,
    writer: SceneWriterDep,
    store: StoreDep,
    limiter: LimiterDep,
    configs: ConfigsDep,
    settings: SettingsDep,
    idempotency: IdempotencyDep,
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
        idempotency,
        "create_scenes",
        idempotency_key,
        request,
        lambda: generate_scenes(
            request,
            writer=writer,
            store=store,
            limiter=limiter,
            defaults=configs.parameters,
            prompt_template=configs.scene_prompts.scene_generation_prompt,
            min_free_bytes=settings.mv_min_free_bytes,
            client=_client(http_request, idempotency_key),
        ),
    )


@router.post(
    "/generate_character_reference",
    name="mv_generate_character_reference",
    response_model=GenerateCharacterReferenceResponse,
    summary="Draw the character reference image (v2)",
    responses=GENERATION_ERRORS,
)
async def generate_character_reference(
    request: GenerateCharacterReferenceRequest,
    drawer: ImageDrawerDep,
    store: StoreDep,
    limiter: LimiterDep,
    configs: ConfigsDep,
    settings: SettingsDep,
    idempotency: IdempotencyDep,
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
        idempotency,
        "generate_character_reference",
        idempotency_key,
        request,
        lambda: generate_character_reference_image(
            request,
            drawer=drawer,
            store=store,
            limiter=limiter,
            params=configs.image_params,
            prompt_template=configs.image_prompts.character_reference_prompt,
            min_free_bytes=settings.mv_min_free_bytes,
            image_url_for=_url_for(http_request, "mv_get_character_reference", "image_id"),
            client=_client(http_request, idempotency_key),
        ),
    )


@router.get(
    "/get_character_reference/{image_id}",
    name="mv_get_character_reference",
    response_class=FileResponse,
    summary="The stored character reference image",
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The image"},
        **error_responses(401, 404),
    },
)
async def get_character_reference(image_id: str, store: StoreDep) -> FileResponse:
    """Serves the image stored under `image_id` with its Content-Type (PNG or JPEG)."""
    stored = await find_reference(image_id, store)
    return FileResponse(store.local_path(stored.key), media_type=stored.content_type)


@router.post(
    "/generate_video",
    name="mv_generate_video",
    response_model=GenerateVideoResponse,
    summary="Render one video clip for one scene (v3)",
    responses={**GENERATION_ERRORS, **error_responses(404)},
)
async def create_video(
    request: GenerateVideoRequest,
    backends: VideoBackendsDep,
    store: StoreDep,
    limiter: LimiterDep,
    configs: ConfigsDep,
    settings: SettingsDep,
    idempotency: IdempotencyDep,
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
        idempotency,
        "generate_video",
        idempotency_key,
        request,
        lambda: generate_video(
            request,
            backends=backends,
            store=store,
            limiter=limiter,
            params=configs.video_params,
            max_reference_image_bytes=settings.mv_max_reference_image_bytes,
            min_free_bytes=settings.mv_min_free_bytes,
            video_url_for=_url_for(http_request, "mv_get_video", "video_id"),
            client=_client(http_request, idempotency_key),
        ),
    )


CLIP_PATH = "/get_video/{video_id}"


@router.get(
    CLIP_PATH,
    name="mv_get_video",
    operation_id="get_video",
    response_class=ClipResponse,
    summary="Download a clip (Range requests supported)",
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The whole clip"},
        206: {"content": {"video/mp4": {}}, "description": "The requested byte range"},
        **error_responses(401, 404, 416),
    },
)
async def get_video(video_id: str, request: Request, store: StoreDep) -> ClipResponse:
    """Streams the clip as `video/mp4` with `Accept-Ranges`, `ETag` and `Last-Modified`.

    `Range: bytes=a-b` answers 206 with that part; a range past the end is a 416. HEAD gives
    the headers (size, ETag) without the body.
    """
    stored = await find_clip(video_id, store)
    check_range(request.headers.get("range"), stored.size_bytes or 0)
    return clip_response(store.local_path(stored.key), etag=stored.sidecar.get("sha256"))


router.add_api_route(
    CLIP_PATH,
    get_video,
    methods=["HEAD"],
    name="head_video",
    operation_id="head_video",
    response_class=ClipResponse,
    summary="A clip's headers (size, ETag) without the body",
    responses=error_responses(401, 404, 416),
)


@router.get(
    "/get_video/{video_id}/info",
    name="mv_get_video_info",
    response_model=VideoInfo,
    summary="A clip's size, creation time and stored metadata",
    responses=error_responses(401, 404),
)
async def get_video_info(video_id: str, store: StoreDep) -> VideoInfo:
    """Everything known about a clip without downloading it. `exists` is false only when
    the metadata survives but the clip file is gone."""
    return await video_info(video_id, store)
