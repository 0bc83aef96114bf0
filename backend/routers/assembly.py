"""HTTP layer of songs and music-video assembly: parse, call one domain function, shape the
answer. The domain lives in `backend.mv.assembly`."""

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from backend.api.dependencies import SettingsDep, StoreDep
from backend.api.errors import ErrorResponse, error_responses
from backend.api.json_body import JSONBodyRoute
from backend.api.media import MediaResponse, media_response
from backend.api.submissions import GENERATION_ERRORS, SubmissionDep
from backend.api.uploads import file_field
from backend.mv.assembly.audio import (
    AudioInfo,
    UploadAudioResponse,
    audio_info,
    find_song,
    upload_audio,
)
from backend.mv.assembly.music_video import (
    AssembleVideoRequest,
    AssembleVideoResponse,
)

router = APIRouter(
    prefix="/api/mv",
    tags=["music video"],
    route_class=JSONBodyRoute,
    responses={
        "4XX": {"model": ErrorResponse, "description": "Client error, in the error shape"},
        "5XX": {"model": ErrorResponse, "description": "Server error"},
    },
)

UPLOAD_PATH = "/upload_audio"
AUDIO_PATH = "/get_audio/{audio_id}"
AUDIO_CONTENT = {
    content_type: {}
    for content_type in (
        "audio/mpeg",
        "audio/wav",
        "audio/mp4",
        "audio/aac",
        "audio/ogg",
        "audio/flac",
    )
}
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        }
    },
}
AssembleBody = Annotated[
    AssembleVideoRequest,
    Body(
        openapi_examples={
            "crossfade": {
                "summary": "Clips crossfaded over a song (use your own ids)",
                "value": {
                    "video_ids": [
                        "3f2b9c1e-8d4a-4f6e-9b7a-1c2d3e4f5a6b",
                        "7d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a",
                    ],
                    "audio_id": "0c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f",
                    "transition": "crossfade",
                    "transition_seconds": 0.5,
                    "fade_out_seconds": 1.0,
                },
            }
        }
    ),
]


@router.post(
    UPLOAD_PATH,
    name="mv_upload_audio",
    status_code=201,
    response_model=UploadAudioResponse,
    summary="Upload a song (multipart field `file`)",
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses={
        201: {"description": "Stored", "headers": {"Location": {"schema": {"type": "string"}}}},
        **error_responses(400, 401, 413, 507),
    },
)
async def upload_song(
    request: Request, response: Response, store: StoreDep, settings: SettingsDep
) -> UploadAudioResponse:
    """MP3, WAV, M4A/AAC, OGG/Opus or FLAC, judged by its content, not its name: ffmpeg
    must find an audio stream (and no video) and decode it to the end. Over
    `MV_MAX_AUDIO_BYTES` is a 413, over `MV_MAX_AUDIO_SECONDS` or anything else a 400.
    Answers 201 with `Location: /api/mv/get_audio/<audio_id>`."""
    stored = await upload_audio(
        file_field(request, "file"),
        store=store,
        max_bytes=settings.mv_max_audio_bytes,
        max_seconds=settings.mv_max_audio_seconds,
        audio_url_for=lambda audio_id: request.app.url_path_for("mv_get_audio", audio_id=audio_id),
    )
    response.headers["Location"] = stored.audio_url
    return stored


@router.get(
    AUDIO_PATH,
    name="mv_get_audio",
    response_class=MediaResponse,
    summary="Download a stored song (Range requests supported)",
    responses={
        200: {"content": AUDIO_CONTENT, "description": "The whole song"},
        206: {"content": AUDIO_CONTENT, "description": "A byte range"},
        **error_responses(401, 404, 416),
    },
)
async def get_audio(audio_id: str, store: StoreDep) -> MediaResponse:
    """The song with its Content-Type, `Accept-Ranges`, `ETag` (its sha256) and
    `Last-Modified`; Range and If-Range as for `get_video`; HEAD gives the headers only."""
    stored = await find_song(audio_id, store)
    return media_response(
        store.local_path(stored.key),
        media_type=stored.content_type,
        etag=stored.sidecar.get("sha256"),
    )


router.add_api_route(
    AUDIO_PATH,
    get_audio,
    methods=["HEAD"],
    name="head_audio",
    operation_id="head_audio",
    response_class=MediaResponse,
    summary="A song's headers (size, type, ETag) without the body",
    responses=error_responses(401, 404, 416),
)


@router.get(
    "/get_audio/{audio_id}/info",
    name="mv_get_audio_info",
    response_model=AudioInfo,
    summary="A song's size, creation time and stored metadata",
    responses=error_responses(401, 404),
)
async def get_audio_info(audio_id: str, store: StoreDep) -> AudioInfo:
    """`exists` is false only when the metadata survives but the file is gone."""
    return await audio_info(audio_id, store)


@router.post(
    "/assemble_video",
    name="mv_assemble_video",
    response_model=AssembleVideoResponse,
    summary="Join stored clips into one music video with a song",
    responses={**GENERATION_ERRORS, **error_responses(404, 500)},
)
async def assemble(request: AssembleBody, submission: SubmissionDep) -> Response:
    """The clips in order, cut or crossfaded, scaled to fit one size and frame rate (never
    stretched), with the song from `audio_offset_seconds`, cut to the video's length, and a
    fade to black at the end. H.264 yuv420p and AAC 48 kHz stereo, `+faststart`; joined
    without re-encoding (`metadata.render: "stream_copy"`) when nothing needs it. Served
    by `get_video` like any clip. Runs as a job (`X-Job-ID`; `Prefer: respond-async` for a
    202, progress as `rendering` percent); waits for a render slot
    (`MV_MAX_CONCURRENT_RENDERS`) show as `metadata.queue_wait_seconds`.
    """
    return await submission.submit("assemble_video", request)
