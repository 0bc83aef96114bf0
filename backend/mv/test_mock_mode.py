"""Mock mode: the whole client workflow with no keys and no cost, real files, and simulated
failures that answer exactly like the live backends."""

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from backend.testing.apps import make_settings, serve_app
from backend.testing.media_checks import decode_whole_file, ffmpeg_stream_info, png_chunks

IDEA = "A robot discovers music in an abandoned city"
CHARACTER = "Silver humanoid robot with a red shield"

JOB_STORE_FILE = "mv.sqlite3"
"""The job store, its WAL and its lock file, in the output folder by default."""


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(make_settings(tmp_path, mv_mock_mode=True)) as (_, client):
        yield client


async def test_whole_workflow_in_mock_mode(client: httpx.AsyncClient, tmp_path: Path) -> None:
    info = (await client.get("/")).json()
    assert info["mode"] == "mock"

    scenes_response = await client.post(
        "/api/mv/create_scenes",
        json={"idea": IDEA, "character_description": CHARACTER, "number_of_scenes": 3},
    )
    assert scenes_response.status_code == 200, scenes_response.text
    scenes = scenes_response.json()["scenes"]
    assert len(scenes) == 3

    reference = await client.post(
        "/api/mv/generate_character_reference", json={"character_description": CHARACTER}
    )
    assert reference.status_code == 200, reference.text
    image_id = reference.json()["image_id"]

    clips = await asyncio.gather(
        *(
            client.post(
                "/api/mv/generate_video",
                json={
                    "prompt": scene["description"],
                    "reference_image_id": image_id,
                    "duration": 4,
                },
            )
            for scene in scenes
        )
    )
    assert [clip.status_code for clip in clips] == [200, 200, 200]
    video_ids = {clip.json()["video_id"] for clip in clips}
    assert len(video_ids) == 3
    for clip in clips:
        body = clip.json()
        assert body["metadata"]["backend_used"] == "mock"
        assert body["metadata"]["model_used"].startswith("mock")
        downloaded = await client.get(body["video_url"])
        assert downloaded.status_code == 200
        assert downloaded.content == Path(body["video_path"]).read_bytes()
        target = tmp_path / f"{body['video_id']}.download.mp4"
        target.write_bytes(downloaded.content)
        decode_whole_file(target)


async def test_mock_scenes_use_the_request_and_vary_their_shots(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(
            "/api/mv/create_scenes",
            json={"idea": IDEA, "character_description": CHARACTER, "number_of_scenes": 5},
        )
    ).json()
    descriptions = [scene["description"] for scene in body["scenes"]]
    assert len(descriptions) == 5
    assert all(IDEA in text and CHARACTER in text for text in descriptions)
    assert len({text.split(".")[0] for text in descriptions}) == 5
    assert body["metadata"]["backend_used"] == "mock"
    assert body["metadata"]["model"].startswith("mock")


@pytest.mark.parametrize(
    ("aspect_ratio", "output_format", "pillow_format", "ratio"),
    [("16:9", "png", "PNG", 16 / 9), ("9:16", "jpg", "JPEG", 9 / 16), ("1:1", "png", "PNG", 1.0)],
)
async def test_mock_image_is_a_real_image_of_the_requested_shape(
    client: httpx.AsyncClient,
    aspect_ratio: str,
    output_format: str,
    pillow_format: str,
    ratio: float,
) -> None:
    response = await client.post(
        "/api/mv/generate_character_reference",
        json={
            "character_description": CHARACTER,
            "aspect_ratio": aspect_ratio,
            "output_format": output_format,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    data = base64.b64decode(body["image_base64"])
    assert data == Path(body["output_file"]).read_bytes()
    if output_format == "png":
        assert png_chunks(data)[0][0] == b"IHDR"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == pillow_format
        width, height = image.size
    assert width / height == pytest.approx(ratio, rel=0.01)
    served = await client.get(body["image_url"])
    assert served.headers["content-type"] == f"image/{'png' if output_format == 'png' else 'jpeg'}"


@pytest.mark.parametrize(
    ("aspect_ratio", "duration", "audio", "size"),
    [("16:9", 4, True, "320x180"), ("9:16", 6, False, "180x320"), ("16:9", 8, False, "320x180")],
)
async def test_mock_clip_is_h264_of_the_requested_shape_with_audio_only_when_asked(
    client: httpx.AsyncClient, aspect_ratio: str, duration: int, audio: bool, size: str
) -> None:
    response = await client.post(
        "/api/mv/generate_video",
        json={
            "prompt": "robot dances",
            "aspect_ratio": aspect_ratio,
            "duration": duration,
            "generate_audio": audio,
        },
    )
    assert response.status_code == 200, response.text
    path = Path(response.json()["video_path"])
    decode_whole_file(path)
    info = ffmpeg_stream_info(path)
    assert "Video: h264" in info
    assert size in info
    assert f"Duration: 00:00:0{duration}" in info
    assert ("Audio: aac" in info) is audio


async def test_live_mode_accepts_the_mock_video_backend(tmp_path: Path) -> None:
    async with serve_app(make_settings(tmp_path)) as (_, client):
        response = await client.post(
            "/api/mv/generate_video", json={"prompt": "robot", "backend": "mock", "duration": 4}
        )
    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["backend_used"] == "mock"


MARKERS = [
    ("[mock:content_policy]", 422, "CONTENT_POLICY_VIOLATION"),
    ("[mock:rate_limit]", 429, "RATE_LIMIT_EXCEEDED"),
    ("[mock:failed]", 502, "GENERATION_FAILED"),
    ("[mock:timeout]", 504, "GENERATION_TIMEOUT"),
]
ENDPOINT_BODIES = {
    "/api/mv/create_scenes": lambda text: {"idea": text, "character_description": CHARACTER},
    "/api/mv/generate_character_reference": lambda text: {"character_description": text},
    "/api/mv/generate_video": lambda text: {"prompt": text},
}


@pytest.mark.parametrize(("marker", "status", "error_code"), MARKERS)
@pytest.mark.parametrize("path", list(ENDPOINT_BODIES))
async def test_failure_markers_answer_like_the_live_backends(
    client: httpx.AsyncClient,
    tmp_path: Path,
    path: str,
    marker: str,
    status: int,
    error_code: str,
) -> None:
    response = await client.post(path, json=ENDPOINT_BODIES[path](f"a robot {marker}"))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == error_code
    assert body["backend_used"] == "mock"
    assert body["request_id"] == response.headers["x-request-id"]
    assert ("retry-after" in response.headers) is (status == 429)
    stored = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert not [path for path in stored if not path.name.startswith(JOB_STORE_FILE)]


async def test_mock_delay_does_not_block_other_requests(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_mock_delay_seconds=2.0)
    async with serve_app(settings) as (_, client):
        slow = asyncio.create_task(
            client.post(
                "/api/mv/create_scenes", json={"idea": IDEA, "character_description": CHARACTER}
            )
        )
        await asyncio.sleep(0.1)
        started = time.monotonic()
        assert (await client.get("/health")).status_code == 200
        health_seconds = time.monotonic() - started
        assert (await slow).status_code == 200
    assert health_seconds < 1.5, "/health waited for the mock generation"
