"""upload_audio and the audio routes: formats judged by content, limits, refusals that leave
nothing behind, and Range/ETag/HEAD serving."""

import hashlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.testing.apps import make_settings, serve_app
from backend.testing.contract import assert_error_shape
from backend.testing.media_checks import FFMPEG
from backend.testing.media_makers import make_clip, make_song
from backend.testing.server_process import mock_server_env, running_server

UPLOAD = "/api/mv/upload_audio"
TONES = [(0.0, 440.0)]
LIMIT = 2 * 1024 * 1024


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        tmp_path / "outputs",
        mv_mock_mode=True,
        mv_max_audio_bytes=LIMIT,
        mv_max_audio_seconds=30,
    )
    async with serve_app(settings) as (_, client):
        yield client


async def upload(client: httpx.AsyncClient, name: str, data: bytes) -> httpx.Response:
    return await client.post(UPLOAD, files={"file": (name, data, "audio/mpeg")})


def stored_leftovers(root: Path) -> list[Path]:
    """Audio files and staged temporaries: a refused upload must leave neither."""
    return [*root.glob("audio/*"), *root.glob(".staging/*.tmp")]


@pytest.mark.parametrize(
    ("suffix", "extra", "expected_format", "content_type", "codec"),
    [
        ("mp3", [], "mp3", "audio/mpeg", "mp3"),
        ("wav", [], "wav", "audio/wav", "pcm_s16le"),
        ("m4a", ["-c:a", "aac"], "m4a", "audio/mp4", "aac"),
        ("ogg", ["-c:a", "libopus"], "ogg", "audio/ogg", "opus"),
        ("flac", [], "flac", "audio/flac", "flac"),
    ],
)
async def test_each_accepted_format_is_stored_and_served_with_its_type(
    client: httpx.AsyncClient,
    tmp_path: Path,
    suffix: str,
    extra: list[str],
    expected_format: str,
    content_type: str,
    codec: str,
) -> None:
    data = encode_tone(tmp_path / f"song.{suffix}", seconds=3, options=[*extra, "-ac", "2"])
    # The name and type say nothing: the content decides.
    response = await client.post(UPLOAD, files={"file": ("upload.bin", data, "text/plain")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == body["audio_url"]
    assert body["audio_url"] == f"/api/mv/get_audio/{body['audio_id']}"
    assert body["format"] == expected_format
    assert body["codec"] == codec
    assert body["channels"] == 2
    assert body["duration_seconds"] == pytest.approx(3.0, abs=0.1)
    assert body["file_size_bytes"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    stored = tmp_path / "outputs" / "audio" / f"{body['audio_id']}.{expected_format}"
    assert stored.read_bytes() == data

    served = await client.get(body["audio_url"])
    assert served.status_code == 200
    assert served.headers["content-type"].startswith(content_type)
    assert served.content == data


async def test_audio_is_served_with_range_etag_head_and_info(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    data = make_song(tmp_path / "song.mp3", TONES, seconds=4).read_bytes()
    body = (await upload(client, "song.mp3", data)).json()
    url = body["audio_url"]

    part = await client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.headers["accept-ranges"] == "bytes"
    assert part.headers["etag"] == f'"{body["sha256"]}"'

    head = await client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(data)

    beyond = await client.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert_error_shape(beyond, 416, "RANGE_NOT_SATISFIABLE")

    info = (await client.get(f"{url}/info")).json()
    assert info["exists"] is True
    assert info["file_size_bytes"] == len(data)
    assert info["metadata"]["duration_seconds"] == body["duration_seconds"]

    for unknown in ("0b7e7d5c-1f1a-4b4e-8c1e-2d3f4a5b6c7d", "..%2F..%2Fetc%2Fpasswd"):
        assert_error_shape(await client.get(f"/api/mv/get_audio/{unknown}"), 404, "NOT_FOUND")


def encode_tone(path: Path, *, seconds: float, options: list[str]) -> bytes:
    """A 440 Hz tone in the format `path`'s suffix and `options` choose."""
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"sine=f=440:d={seconds}",
            *options,
            str(path),
        ],
        check=True,
    )
    return path.read_bytes()


def truncated(path: Path, keep: float) -> bytes:
    data = path.read_bytes()
    return data[: int(len(data) * keep)]


async def test_refused_uploads_are_400s_that_leave_nothing_behind(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    m4a = tmp_path / "song.m4a"
    encode_tone(m4a, seconds=5, options=["-c:a", "aac", "-movflags", "+faststart"])
    wav = make_song(tmp_path / "song.wav", TONES, seconds=5)
    silent_video = make_clip(tmp_path / "silent.mp4", seconds=1)
    video_with_sound = make_clip(tmp_path / "loud.mp4", seconds=1, tone_hz=300)
    too_long = make_song(tmp_path / "long.mp3", TONES, seconds=40)
    cases = {
        "text named .mp3": ("song.mp3", b"just some text, not audio\n" * 50),
        "empty file": ("song.mp3", b""),
        "truncated m4a": ("song.m4a", truncated(m4a, 0.5)),
        "truncated wav": ("song.wav", truncated(wav, 0.5)),
        "video without sound": ("clip.mp4", silent_video.read_bytes()),
        "video with sound": ("clip.mp4", video_with_sound.read_bytes()),
        "longer than the limit": ("long.mp3", too_long.read_bytes()),
    }
    for case, (name, data) in cases.items():
        response = await upload(client, name, data)
        body = assert_error_shape(response, 400, "VALIDATION_ERROR")
        assert body["details"][0]["field"] == "file", case
    assert stored_leftovers(tmp_path / "outputs") == []


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]


@pytest.mark.parametrize(
    ("size", "chunked"),
    [
        pytest.param(LIMIT + 1, False, id="one-byte-over-counted-while-reading"),
        pytest.param(LIMIT + 1, True, id="chunked-body-counted-while-reading"),
        pytest.param(4 * LIMIT, False, id="declared-length-refused-up-front"),
    ],
)
async def test_an_upload_over_the_byte_limit_is_a_413_and_is_not_kept(
    client: httpx.AsyncClient, tmp_path: Path, size: int, chunked: bool
) -> None:
    song = make_song(tmp_path / "big.wav", TONES, seconds=50).read_bytes()[:size]
    boundary = "limitcheck"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + song
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = await client.post(
        UPLOAD,
        content=chunks(body) if chunked else body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error_shape(response, 413, "PAYLOAD_TOO_LARGE")
    assert stored_leftovers(tmp_path / "outputs") == []


async def test_bodies_without_a_file_part_are_400s(client: httpx.AsyncClient) -> None:
    not_multipart = await client.post(UPLOAD, json={"file": "song.mp3"})
    assert_error_shape(not_multipart, 400, "VALIDATION_ERROR")
    other_field = await client.post(UPLOAD, files={"song": ("a.mp3", b"ID3" + b"\0" * 100)})
    assert_error_shape(other_field, 400, "VALIDATION_ERROR")
    cut_off = await client.post(
        UPLOAD,
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nID3 and no end',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert_error_shape(cut_off, 400, "VALIDATION_ERROR")


def test_a_song_larger_than_a_json_body_streams_through_a_real_server(tmp_path: Path) -> None:
    """20 MiB, over MV_MAX_REQUEST_BYTES (16 MiB) and under MV_MAX_AUDIO_BYTES (50 MiB):
    the upload route has its own body limit."""
    song = make_song(tmp_path / "long.wav", TONES, seconds=110)
    assert song.stat().st_size > 20 * 1024 * 1024
    env = mock_server_env(tmp_path / "outputs")
    with running_server(env, tmp_path / "server.log") as (url, _), song.open("rb") as handle:
        response = httpx.post(
            f"{url}{UPLOAD}", files={"file": ("long.wav", handle, "audio/wav")}, timeout=60
        )
    assert response.status_code == 201, response.text
    assert response.json()["duration_seconds"] == pytest.approx(110, abs=0.1)
