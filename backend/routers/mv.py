"""HTTP layer of the music-video endpoints: parse, call one domain function, shape the answer.

Every error answer has the shape documented in DESIGN.md (`ErrorResponse`); the status codes
each route can give are listed in its OpenAPI entry, with an example per error code. URLs in
answers are made from the routes' names, so a path is written once, here.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from backend.api.dependencies import StoreDep
from backend.api.errors import ErrorResponse, error_responses
from backend.api.json_body import JSONBodyRoute
from backend.api.media import MediaResponse, media_response
from backend.api.submissions import GENERATION_ERRORS, SubmissionDep
from backend.mv.image_generator import (
    GenerateCharacterReferenceRequest,
    GenerateCharacterReferenceResponse,
    find_reference,
)
from backend.mv.scene_generator import CreateScenesRequest, CreateScenesResponse
from backend.mv.video_generator import (
    GenerateVideoRequest,
    GenerateVideoResponse,
    VideoInfo,
    find_clip,
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


@router.post(
    "/create_scenes",
    name="mv_create_scenes",
    response_model=CreateScenesResponse,
    summary="Write scene prompts for a video idea (v1)",
    responses=GENERATION_ERRORS,
)
async def create_scenes(request: ScenesBody, submission: SubmissionDep) -> Response:
    """Gemini writes `number_of_scenes` self-contained Veo prompts for the idea and character.

    Fields left out take their defaults from `parameters.yaml` (the response's
    `metadata.defaults_applied` lists them). The scenes are also stored as `scenes.json` and
    `scenes.md` in a folder of their own (`output_dir`, or a fresh `scene_set_id`).
    Typical time: 10-60 s live, `MV_MOCK_DELAY_SECONDS` in mock mode. Runs as a job
    (`X-Job-ID`; `Prefer: respond-async` for a 202).
    """
    return await submission.submit("create_scenes", request)


@router.post(
    "/generate_character_reference",
    name="mv_generate_character_reference",
    response_model=GenerateCharacterReferenceResponse,
    summary="Draw the character reference image (v2)",
    responses=GENERATION_ERRORS,
)
async def generate_character_reference(
    request: CharacterBody, submission: SubmissionDep
) -> Response:
    """Imagen 4 on Replicate draws the character; the image is stored and returned.

    The answer carries the image as base64 and an `image_id`: pass that id to
    `generate_video` as `reference_image_id` instead of sending the image back. Choices the
    model cannot take are refused with 400 before any money is spent; parameters the model
    has no input for are listed in `metadata.parameters_not_applied`.
    Typical time: 5-30 s live. Runs as a job (`X-Job-ID`; `Prefer: respond-async`).
    """
    return await submission.submit("generate_character_reference", request)


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
async def create_video(request: VideoBody, submission: SubmissionDep) -> Response:
    """Veo 3.1 renders one clip (4, 6 or 8 s) for `prompt`; call once per scene, concurrently.

    Synchronously the answer arrives when the clip is stored (20-400 s live; set a client
    timeout of at least 600 s), or send `Prefer: respond-async` for a 202 with the job and
    follow it (`GET /api/mv/jobs/{id}`, its events, or a webhook). Give the character with
    `reference_image_id` (from generate_character_reference) or `reference_image_base64`,
    not both. `backend` picks `replicate` (default) or `gemini`; parameters a backend
    cannot take are listed in `metadata.parameters_not_applied`. Fetch the clip from
    `video_url`.
    """
    return await submission.submit("generate_video", request)


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
