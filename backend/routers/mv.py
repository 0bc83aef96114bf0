"""HTTP layer of the music-video endpoints: parse, call one domain function, shape the answer.

Every error answer has the shape documented in DESIGN.md (`ErrorResponse`); the status codes
each route can give are listed in its OpenAPI entry, with an example per error code. URLs in
answers are made from the routes' names, so a path is written once, here.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request
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
from backend.api.media import MediaResponse, media_response
from backend.api.middleware import CALLER_STATE
from backend.mv.configuration import MVConfigs
from backend.mv.idempotency import MAX_KEY_LENGTH, IdempotencyStore, request_fingerprint
from backend.mv.image_generator import (
    GenerateCharacterReferenceRequest,
    GenerateCharacterReferenceResponse,
    find_reference,
    generate_character_reference_image,
)
from backend.mv.limiter import GenerationLimiter
from backend.mv.params import Client
from backend.mv.scene_generator import CreateScenesRequest, CreateScenesResponse, generate_scenes
from backend.mv.storage.base import ArtifactStore
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


def _example(summary: str, value: dict[str, Any]) -> dict[str, Any]:
    """A request body for Swagger's "Try it out": complete, and answered 200 in mock mode
    every time it is sent (so no `output_dir`, no reference image id)."""
    return {"default": {"summary": summary, "value": value}}


CHARACTER = "Silver metallic humanoid robot with a red shield"
ScenesBody = Annotated[
    CreateScenesRequest,
    Body(
        openapi_examples=_example(
            "Four scenes for a music video",
            {
                "idea": "A robot discovers music in an abandoned city",
                "character_description": CHARACTER,
                "character_characteristics": "curious, gentle, quietly brave",
                "number_of_scenes": 4,
                "video_type": "music video",
                "video_characteristics": "neon-lit, cinematic, slow camera moves",
                "camera_angle": "low angle",
            },
        )
    ),
]
CharacterBody = Annotated[
    GenerateCharacterReferenceRequest,
    Body(
        openapi_examples=_example(
            "A square PNG of the character",
            {
                "character_description": CHARACTER,
                "aspect_ratio": "1:1",
                "safety_filter_level": "block_medium_and_above",
                "person_generation": "allow_adult",
                "output_format": "png",
                "negative_prompt": "text, watermark, extra limbs",
                "seed": 42,
            },
        )
    ),
]
VideoBody = Annotated[
    GenerateVideoRequest,
    Body(
        openapi_examples=_example(
            "An 8 s landscape clip with sound",
            {
                "prompt": "Wide shot: the robot walks through a neon city at dusk, slow dolly in",
                "negative_prompt": "blurry footage, text overlays",
                "aspect_ratio": "16:9",
                "duration": 8,
                "generate_audio": True,
                "seed": 42,
                "backend": "replicate",
            },
        )
    ),
]

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


@dataclass
class Generation:
    """What every generation route shares beside its own strategy: the store, the caps, the
    configs, the free space a paid call needs, and this request's client and Idempotency-Key."""

    http_request: Request
    store: ArtifactStore
    limiter: GenerationLimiter
    configs: MVConfigs
    min_free_bytes: int
    idempotency: IdempotencyStore
    key: str | None

    @property
    def client(self) -> Client:
        """The request's client for the generators. Without an Idempotency-Key, a client that
        leaves while its request waits for a slot has it dropped before anything is paid:
        nobody could collect the result. With one, the work goes on and is kept for the key."""

        async def departed() -> None:
            while (await self.http_request.receive())["type"] != "http.disconnect":
                pass

        return Client(
            has_left=self.http_request.is_disconnected,
            departure=departed if self.key is None else None,
        )

    async def answer_once(
        self, endpoint: str, request: BaseModel, produce: Callable[[], Awaitable[BaseModel]]
    ) -> dict[str, Any]:
        """Run `produce` once per Idempotency-Key and caller (or every time without a key)."""

        async def produce_json() -> dict[str, Any]:
            return (await produce()).model_dump(mode="json", by_alias=True)

        if self.key is None:
            return await produce_json()
        fingerprint = await DECODING.run(request_fingerprint, request.model_dump(mode="json"))
        owner = getattr(self.http_request.state, CALLER_STATE, "")
        return await self.idempotency.run_once(
            endpoint, self.key, fingerprint, produce_json, owner=owner
        )

    def url_for(self, route_name: str, parameter: str) -> Callable[[str], str]:
        """`artifact_id → /api/mv/...`: the path of one of this router's GET routes."""
        app = self.http_request.app
        return lambda artifact_id: app.url_path_for(route_name, **{parameter: artifact_id})


async def _generation(
    http_request: Request,
    store: StoreDep,
    limiter: LimiterDep,
    configs: ConfigsDep,
    settings: SettingsDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> Generation:
    return Generation(
        http_request,
        store,
        limiter,
        configs,
        settings.mv_min_free_bytes,
        idempotency,
        idempotency_key,
    )


GenerationDep = Annotated[Generation, Depends(_generation)]


@router.post(
    "/create_scenes",
    name="mv_create_scenes",
    response_model=CreateScenesResponse,
    summary="Write scene prompts for a video idea (v1)",
    responses=GENERATION_ERRORS,
)
async def create_scenes(
    request: ScenesBody, writer: SceneWriterDep, generation: GenerationDep
) -> dict[str, Any]:
    """Gemini writes `number_of_scenes` self-contained Veo prompts for the idea and character.

    Fields left out take their defaults from `parameters.yaml` (the response's
    `metadata.defaults_applied` lists them). The scenes are also stored as `scenes.json` and
    `scenes.md` in a folder of their own (`output_dir`, or a fresh `scene_set_id`).
    Typical time: 10-60 s live, `MV_MOCK_DELAY_SECONDS` in mock mode.
    """
    configs = generation.configs
    return await generation.answer_once(
        "create_scenes",
        request,
        lambda: generate_scenes(
            request,
            writer=writer,
            store=generation.store,
            limiter=generation.limiter,
            defaults=configs.parameters,
            prompt_template=configs.scene_prompts.scene_generation_prompt,
            min_free_bytes=generation.min_free_bytes,
            client=generation.client,
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
    request: CharacterBody, drawer: ImageDrawerDep, generation: GenerationDep
) -> dict[str, Any]:
    """Imagen 4 on Replicate draws the character; the image is stored and returned.

    The answer carries the image as base64 and an `image_id`: pass that id to
    `generate_video` as `reference_image_id` instead of sending the image back. Choices the
    model cannot take are refused with 400 before any money is spent; parameters the model
    has no input for are listed in `metadata.parameters_not_applied`.
    Typical time: 5-30 s live.
    """
    configs = generation.configs
    return await generation.answer_once(
        "generate_character_reference",
        request,
        lambda: generate_character_reference_image(
            request,
            drawer=drawer,
            store=generation.store,
            limiter=generation.limiter,
            params=configs.image_params,
            prompt_template=configs.image_prompts.character_reference_prompt,
            min_free_bytes=generation.min_free_bytes,
            image_url_for=generation.url_for("mv_get_character_reference", "image_id"),
            client=generation.client,
        ),
    )


@router.get(
    "/get_character_reference/{image_id}",
    name="mv_get_character_reference",
    response_class=MediaResponse,
    summary="The stored character reference image",
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The image"},
        206: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "A byte range"},
        **error_responses(401, 404, 416),
    },
)
async def get_character_reference(image_id: str, store: StoreDep) -> MediaResponse:
    """Serves the image stored under `image_id` with its Content-Type (PNG or JPEG), with
    the same Range, If-Range and ETag handling as `get_video`."""
    stored = await find_reference(image_id, store)
    return media_response(
        store.local_path(stored.key), media_type=stored.content_type, etag=stored.sha256
    )


@router.post(
    "/generate_video",
    name="mv_generate_video",
    response_model=GenerateVideoResponse,
    summary="Render one video clip for one scene (v3)",
    responses={**GENERATION_ERRORS, **error_responses(404)},
)
async def create_video(
    request: VideoBody,
    backends: VideoBackendsDep,
    settings: SettingsDep,
    generation: GenerationDep,
) -> dict[str, Any]:
    """Veo 3.1 renders one clip (4, 6 or 8 s) for `prompt`; call once per scene, concurrently.

    The answer arrives when the clip is stored (20-400 s live; set a client timeout of at
    least 600 s). Give the character with `reference_image_id` (from
    generate_character_reference) or `reference_image_base64`, not both. `backend` picks
    `replicate` (default) or `gemini`; parameters a backend cannot take are listed in
    `metadata.parameters_not_applied`. Fetch the clip from `video_url`.
    """
    return await generation.answer_once(
        "generate_video",
        request,
        lambda: generate_video(
            request,
            backends=backends,
            store=generation.store,
            limiter=generation.limiter,
            params=generation.configs.video_params,
            max_reference_image_bytes=settings.mv_max_reference_image_bytes,
            min_free_bytes=generation.min_free_bytes,
            video_url_for=generation.url_for("mv_get_video", "video_id"),
            client=generation.client,
        ),
    )


CLIP_PATH = "/get_video/{video_id}"


@router.get(
    CLIP_PATH,
    name="mv_get_video",
    operation_id="get_video",
    response_class=MediaResponse,
    summary="Download a clip (Range requests supported)",
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The whole clip"},
        206: {"content": {"video/mp4": {}}, "description": "The requested byte range"},
        **error_responses(401, 404, 416),
    },
)
async def get_video(video_id: str, store: StoreDep) -> MediaResponse:
    """Streams the clip as `video/mp4` with `Accept-Ranges`, `ETag` and `Last-Modified`.

    `Range: bytes=a-b` answers 206 with that part; a range past the end is a 416, unless
    `If-Range` is stale (then the whole clip, 200); a malformed Range is ignored. HEAD
    gives the headers (size, ETag) without the body.
    """
    stored = await find_clip(video_id, store)
    return media_response(
        store.local_path(stored.key), media_type="video/mp4", etag=stored.sidecar.get("sha256")
    )


router.add_api_route(
    CLIP_PATH,
    get_video,
    methods=["HEAD"],
    name="head_video",
    operation_id="head_video",
    response_class=MediaResponse,
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
