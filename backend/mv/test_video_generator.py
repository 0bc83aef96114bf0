"""generate_video and clip serving end to end: validation before any upstream call, the stored
clip and its sidecar, references by id, Range/HEAD serving, hostile ids and concurrency."""

import asyncio
import base64
import hashlib
import io
import json
import random
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from backend.config import Settings
from backend.mv.configuration import CONFIG_DIR, ConfigError, load_configs
from backend.testing.apps import live_settings, serve_app
from backend.testing.contract import assert_error_shape
from backend.testing.fake_upstream import FakeUpstream

VIDEO = "/api/mv/generate_video"
CHARACTER_REFERENCE = "/api/mv/generate_character_reference"
PROMPT = "A silver robot walks through a neon city at sunset, slow tracking shot"
BACKENDS = ["replicate", "gemini"]
FAST = {"mv_generation_timeout_seconds": 5.0, "mv_poll_interval_seconds": 0.05}


def settings_for(fake_upstream: FakeUpstream, tmp_path: Path, **overrides: Any) -> Settings:
    return live_settings(tmp_path, fake_upstream.base_url, **{**FAST, **overrides})


@pytest.fixture
async def client(fake_upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(settings_for(fake_upstream, tmp_path)) as (_, client):
        yield client


@pytest.fixture
async def clip(client: httpx.AsyncClient, fake_upstream: FakeUpstream) -> dict[str, Any]:
    """One stored clip (its generate_video body); the fake served 300 001 bytes."""
    fake_upstream.clip_bytes = 300_001
    response = await client.post(VIDEO, json={"prompt": PROMPT})
    assert response.status_code == 200, response.text
    return response.json()


def upstream_clip(fake_upstream: FakeUpstream) -> bytes:
    [generated] = fake_upstream.generated_files
    return fake_upstream.clip_content(generated.file_id)


def image_bytes(image_format: str, size: tuple[int, int] = (24, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, format=image_format)
    return buffer.getvalue()


def noise_png(side: int) -> bytes:
    """A PNG of random pixels, which does not compress: a little over 3 * side**2 bytes."""
    pixels = random.Random(side).randbytes(3 * side * side)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sent_reference_images(fake_upstream: FakeUpstream) -> list[str]:
    """`reference_images` of the (last) Veo prediction created on Replicate."""
    create = fake_upstream.requests_for("replicate.create")[-1]
    assert "veo" in create.path
    return create.json["input"]["reference_images"]


# ---- request validation, before any upstream call


PNG = image_bytes("PNG")
INVALID_REQUESTS = [
    pytest.param({"aspect_ratio": "1:1"}, "aspect_ratio", id="aspect-ratio-square"),
    pytest.param({"aspect_ratio": "4:3"}, "aspect_ratio", id="aspect-ratio-4-3"),
    pytest.param({"duration": 5}, "duration", id="duration-5"),
    pytest.param({"duration": 10}, "duration", id="duration-10"),
    pytest.param(
        {"reference_image_base64": "not base64 at all!"},
        "reference_image_base64",
        id="invalid-base64",
    ),
    pytest.param(
        {"reference_image_base64": b64(b"plain text pretending to be an image")},
        "reference_image_base64",
        id="base64-of-text",
    ),
    pytest.param(
        {"reference_image_base64": b64(image_bytes("GIF"))},
        "reference_image_base64",
        id="gif",
    ),
    pytest.param(
        {"reference_image_base64": b64(PNG[:40])},
        "reference_image_base64",
        id="truncated-png",
    ),
    pytest.param(
        {"reference_image_base64": "data:image/png;base64"},
        "reference_image_base64",
        id="data-uri-without-payload",
    ),
    pytest.param(
        {"reference_image_base64": b64(PNG), "reference_image_id": str(uuid.uuid4())},
        "reference_image_id",
        id="both-reference-fields",
    ),
    pytest.param({"backend": "sora"}, "backend", id="unknown-backend"),
    pytest.param({"seed": False}, "seed", id="boolean-seed"),
    pytest.param({"duration": "8"}, "duration", id="duration-as-text"),
    pytest.param({"generate_audio": "yes"}, "generate_audio", id="audio-as-text"),
    pytest.param({"prompt": "   "}, "prompt", id="blank-prompt"),
    pytest.param(
        {"video_rules_template": "{style} framing"}, "video_rules_template", id="template-name"
    ),
    pytest.param(
        {"video_rules_template": "{0} framing"}, "video_rules_template", id="template-index"
    ),
    pytest.param(
        {"video_rules_template": "{} framing"}, "video_rules_template", id="template-auto"
    ),
    pytest.param(
        {"video_rules_template": "framing {"}, "video_rules_template", id="template-unbalanced"
    ),
    pytest.param(
        {"video_rules_template": "{aspect_ratio.upper}"},
        "video_rules_template",
        id="template-attribute",
    ),
    pytest.param(
        {"video_rules_template": "{aspect_ratio.missing}"},
        "video_rules_template",
        id="template-missing-attribute",
    ),
    pytest.param(
        {"video_rules_template": "{aspect_ratio[0]}"}, "video_rules_template", id="template-item"
    ),
    pytest.param(
        {"video_rules_template": "{aspect_ratio:>9999999}"},
        "video_rules_template",
        id="template-format-spec-padding",
    ),
]


@pytest.mark.parametrize(("changes", "field"), INVALID_REQUESTS)
async def test_invalid_request_is_a_400_before_any_upstream_call(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, changes: dict[str, Any], field: str
) -> None:
    response = await client.post(VIDEO, json={"prompt": PROMPT, **changes})
    body = assert_error_shape(response, 400, "VALIDATION_ERROR")
    assert field in {detail["field"] for detail in body["details"]}
    assert fake_upstream.requests == []


async def test_missing_prompt_is_a_400(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post(VIDEO, json={"duration": 4})
    body = assert_error_shape(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "prompt"
    assert fake_upstream.requests == []


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(noise_png(32), id="png"),
        pytest.param(b"\x00not an image\x00" * 200, id="not-an-image"),
    ],
)
async def test_reference_image_over_the_limit_is_a_413_before_its_format_is_checked(
    fake_upstream: FakeUpstream, tmp_path: Path, payload: bytes
) -> None:
    settings = settings_for(fake_upstream, tmp_path, mv_max_reference_image_bytes=1024)
    async with serve_app(settings) as (_, client):
        response = await client.post(
            VIDEO, json={"prompt": PROMPT, "reference_image_base64": b64(payload)}
        )
    assert_error_shape(response, 413, "PAYLOAD_TOO_LARGE")
    assert fake_upstream.requests == []


@pytest.mark.parametrize(("slack", "status"), [(0, 200), (-1, 413)])
async def test_reference_image_size_limit_is_inclusive(
    fake_upstream: FakeUpstream, tmp_path: Path, slack: int, status: int
) -> None:
    image = noise_png(16)
    settings = settings_for(
        fake_upstream, tmp_path, mv_max_reference_image_bytes=len(image) + slack
    )
    async with serve_app(settings) as (_, client):
        response = await client.post(
            VIDEO, json={"prompt": PROMPT, "reference_image_base64": b64(image)}
        )
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    "reference_image_id",
    [str(uuid.uuid4()), "../../etc/passwd", "not-a-uuid"],
    ids=["unknown-uuid", "traversal", "malformed"],
)
async def test_unknown_reference_image_id_is_a_404_before_any_upstream_call(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, reference_image_id: str
) -> None:
    response = await client.post(
        VIDEO, json={"prompt": PROMPT, "reference_image_id": reference_image_id}
    )
    assert_error_shape(response, 404, "NOT_FOUND")
    assert fake_upstream.requests == []


@pytest.mark.parametrize(
    ("image_format", "mime_type", "data_uri"),
    [
        ("PNG", "image/png", False),
        ("PNG", "image/png", True),
        ("JPEG", "image/jpeg", False),
        ("JPEG", "image/jpeg", True),
        ("WEBP", "image/webp", False),
        ("WEBP", "image/webp", True),
    ],
)
async def test_png_jpeg_and_webp_references_are_accepted_and_sent(
    client: httpx.AsyncClient,
    fake_upstream: FakeUpstream,
    image_format: str,
    mime_type: str,
    data_uri: bool,
) -> None:
    image = image_bytes(image_format)
    encoded = f"data:{mime_type};base64,{b64(image)}" if data_uri else b64(image)
    response = await client.post(VIDEO, json={"prompt": PROMPT, "reference_image_base64": encoded})
    assert response.status_code == 200, response.text
    assert sent_reference_images(fake_upstream) == [f"data:{mime_type};base64,{b64(image)}"]


# ---- configuration


def test_video_defaults_load_from_video_params() -> None:
    params = load_configs().video_params
    assert params.replicate_model == "google/veo-3.1"
    assert "veo-3.1" in params.gemini_model
    assert params.aspect_ratio == "16:9"
    assert params.duration == 8
    assert params.generate_audio is True
    assert params.person_generation == "allow_all"
    assert "{aspect_ratio}" in params.rules_template
    assert params.allowed.aspect_ratio == ["16:9", "9:16"]
    assert params.allowed.duration == [4, 6, 8]


@pytest.mark.parametrize(
    ("original", "broken"),
    [
        ("duration: 8", "duration: 5"),
        ('aspect_ratio: "16:9"', 'aspect_ratio: "1:1"'),
        ("Framing: {aspect_ratio}.", "Framing: {aspect_ratio} in {style}."),
    ],
)
def test_bad_video_config_stops_loading_naming_the_file(
    tmp_path: Path, original: str, broken: str
) -> None:
    config_dir = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, config_dir)
    path = config_dir / "video_params.yaml"
    assert original in path.read_text()
    path.write_text(path.read_text().replace(original, broken))
    with pytest.raises(ConfigError, match=r"video_params\.yaml"):
        load_configs(config_dir)


async def test_request_without_options_gets_the_configured_defaults(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post(VIDEO, json={"prompt": PROMPT})
    assert response.status_code == 200, response.text
    metadata = response.json()["metadata"]
    assert metadata["model_used"] == "google/veo-3.1"
    assert (metadata["is_mock"], metadata["has_reference_image"]) == (False, False)
    assert metadata["parameters_used"] == {
        "aspect_ratio": "16:9",
        "duration": 8,
        "generate_audio": True,
    }
    assert set(metadata["defaults_applied"]) == {"aspect_ratio", "duration", "generate_audio"}
    [create] = fake_upstream.requests_for("replicate.create")
    assert create.path == "/v1/models/google/veo-3.1/predictions"


async def test_edited_video_defaults_reach_the_provider(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    config_dir = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, config_dir)
    path = config_dir / "video_params.yaml"
    edited = (
        path.read_text()
        .replace("replicate_model: google/veo-3.1", "replicate_model: google/veo-3.1-fast")
        .replace('aspect_ratio: "16:9"', 'aspect_ratio: "9:16"', 1)
        .replace("duration: 8", "duration: 4")
        .replace("generate_audio: true", "generate_audio: false")
    )
    path.write_text(edited)
    settings = settings_for(fake_upstream, tmp_path / "outputs")
    async with serve_app(settings, config_dir=config_dir) as (_, client):
        response = await client.post(VIDEO, json={"prompt": PROMPT})
    assert response.status_code == 200, response.text
    [create] = fake_upstream.requests_for("replicate.create")
    assert create.path == "/v1/models/google/veo-3.1-fast/predictions"
    model_input = create.json["input"]
    assert (model_input["aspect_ratio"], model_input["duration"]) == ("9:16", 4)
    assert model_input["generate_audio"] is False
    assert "Framing: 9:16." in model_input["prompt"]


# ---- the stored clip


async def test_video_id_is_a_canonical_uuid4(clip: dict[str, Any]) -> None:
    parsed = uuid.UUID(clip["video_id"])
    assert parsed.version == 4
    assert str(parsed) == clip["video_id"]


async def test_response_describes_the_stored_clip(clip: dict[str, Any], tmp_path: Path) -> None:
    video_id = clip["video_id"]
    video_path = Path(clip["video_path"])
    assert video_path.is_absolute()
    assert video_path == tmp_path / "videos" / f"{video_id}.mp4"
    assert clip["video_url"] == f"/api/mv/get_video/{video_id}"
    metadata = clip["metadata"]
    data = video_path.read_bytes()
    assert metadata["file_size_bytes"] == len(data) == 300_001
    assert metadata["sha256"] == hashlib.sha256(data).hexdigest()
    assert metadata["prompt"] == PROMPT
    assert metadata["backend_used"] == "replicate"
    assert metadata["model_used"] == "google/veo-3.1"
    assert metadata["generation_timestamp"].endswith("Z")
    assert metadata["processing_time_seconds"] >= 0
    assert metadata["queue_wait_seconds"] >= 0
    assert "parameters_not_applied" in metadata


async def test_sidecar_beside_the_clip_holds_its_metadata(
    clip: dict[str, Any], tmp_path: Path
) -> None:
    video_id = clip["video_id"]
    sidecar = json.loads((tmp_path / "videos" / f"{video_id}.json").read_text())
    assert sidecar["video_id"] == video_id
    assert sidecar["created_at"] == clip["metadata"]["generation_timestamp"]
    for name, value in clip["metadata"].items():
        assert sidecar[name] == value, name
    assert sorted(path.name for path in (tmp_path / "videos").iterdir()) == sorted(
        [f"{video_id}.json", f"{video_id}.mp4"]
    )


@pytest.mark.parametrize("backend", ["replicate", "gemini"])
async def test_reference_image_id_sends_the_stored_image_upstream(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, backend: str
) -> None:
    reference = await client.post(
        CHARACTER_REFERENCE, json={"character_description": "Silver robot with a red shield"}
    )
    assert reference.status_code == 200, reference.text
    [generated_image] = fake_upstream.generated_files
    image = fake_upstream.file_content(generated_image.file_id)

    response = await client.post(
        VIDEO,
        json={
            "prompt": PROMPT,
            "backend": backend,
            "reference_image_id": reference.json()["image_id"],
        },
    )

    assert response.status_code == 200, response.text
    if backend == "replicate":
        assert sent_reference_images(fake_upstream) == [f"data:image/png;base64,{b64(image)}"]
    else:
        [create] = fake_upstream.requests_for("gemini.predict_long_running")
        [sent] = create.json["instances"][0]["referenceImages"]
        assert base64.b64decode(sent["image"]["bytesBase64Encoded"]) == image


# ---- serving


async def test_get_video_serves_the_whole_clip(
    client: httpx.AsyncClient, clip: dict[str, Any], fake_upstream: FakeUpstream
) -> None:
    response = await client.get(clip["video_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == "300001"
    assert response.content == upstream_clip(fake_upstream)


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=-100", 300_001 - 100, 300_000),
        ("bytes=100-", 100, 300_000),
        ("bytes=299990-400000", 299_990, 300_000),
    ],
)
async def test_range_request_serves_exactly_those_bytes(
    client: httpx.AsyncClient,
    clip: dict[str, Any],
    fake_upstream: FakeUpstream,
    range_header: str,
    start: int,
    end: int,
) -> None:
    response = await client.get(clip["video_url"], headers={"Range": range_header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/300001"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.content == upstream_clip(fake_upstream)[start : end + 1]


@pytest.mark.parametrize("range_header", ["bytes=300001-", "bytes=400000-400100"])
async def test_unsatisfiable_range_is_a_416_in_the_error_shape(
    client: httpx.AsyncClient, clip: dict[str, Any], range_header: str
) -> None:
    response = await client.get(clip["video_url"], headers={"Range": range_header})
    assert_error_shape(response, 416, "RANGE_NOT_SATISFIABLE")
    assert response.headers["content-range"] == "bytes */300001"


async def test_head_gives_the_headers_without_a_body(
    client: httpx.AsyncClient, clip: dict[str, Any]
) -> None:
    head = await client.head(clip["video_url"])
    get = await client.get(clip["video_url"])
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "300001"
    assert head.headers["content-type"] == "video/mp4"
    assert head.headers["accept-ranges"] == "bytes"
    assert head.headers["etag"]
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["last-modified"] == get.headers["last-modified"]


async def test_info_describes_the_clip(client: httpx.AsyncClient, clip: dict[str, Any]) -> None:
    response = await client.get(f"{clip['video_url']}/info")
    assert response.status_code == 200
    info = response.json()
    assert info["video_id"] == clip["video_id"]
    assert info["file_size_bytes"] == 300_001
    assert info["created_at"] == clip["metadata"]["generation_timestamp"]
    assert info["exists"] is True
    assert info["metadata"]["sha256"] == clip["metadata"]["sha256"]
    assert info["metadata"]["prompt"] == PROMPT


async def test_info_says_a_deleted_clip_no_longer_exists(
    client: httpx.AsyncClient, clip: dict[str, Any]
) -> None:
    Path(clip["video_path"]).unlink()
    info = (await client.get(f"{clip['video_url']}/info")).json()
    assert info["exists"] is False
    assert info["video_id"] == clip["video_id"]
    assert info["metadata"]["sha256"] == clip["metadata"]["sha256"]
    assert_error_shape(await client.get(clip["video_url"]), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "path",
    [
        "/api/mv/get_video/{unknown}",
        "/api/mv/get_video/{unknown}/info",
        "/api/mv/get_video/not-a-uuid",
        "/api/mv/get_video/not-a-uuid/info",
        "/api/mv/get_video/..%2F..%2Fetc%2Fpasswd",
        "/api/mv/get_video/..%2F..%2Fetc%2Fpasswd/info",
        "/api/mv/get_video/%2e%2e",
        "/api/mv/get_video/%2e%2e/info",
        "/api/mv/get_video/%2Fetc%2Fpasswd",
        "/api/mv/get_video/{video_id}.json",
        "/api/mv/get_video/{video_id}.json/info",
        "/api/mv/get_video/{video_id}.mp4",
        "/api/mv/get_video/{video_id}%00",
    ],
)
async def test_unknown_malformed_and_hostile_ids_are_404s(
    client: httpx.AsyncClient, clip: dict[str, Any], path: str
) -> None:
    url = path.format(unknown=uuid.uuid4(), video_id=clip["video_id"])
    response = await client.get(url)
    assert_error_shape(response, 404, "NOT_FOUND")
    assert "root:" not in response.text


# ---- concurrency


async def test_requests_beyond_the_cap_wait_for_a_slot(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.latency_seconds = 0.5
    settings = settings_for(fake_upstream, tmp_path, mv_max_concurrent_generations=2)
    async with serve_app(settings) as (_, client):
        responses = await asyncio.gather(
            *(client.post(VIDEO, json={"prompt": f"{PROMPT} #{index}"}) for index in range(4))
        )
    assert [response.status_code for response in responses] == [200] * 4
    waits = sorted(response.json()["metadata"]["queue_wait_seconds"] for response in responses)
    assert waits[0] < 0.25
    assert waits[-2] >= 0.25


async def test_time_waiting_for_a_slot_does_not_count_against_the_timeout(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.latency_seconds = 0.6
    settings = settings_for(
        fake_upstream,
        tmp_path,
        mv_max_concurrent_generations=1,
        mv_generation_timeout_seconds=1.0,
    )
    async with serve_app(settings) as (_, client):
        responses = await asyncio.gather(
            *(client.post(VIDEO, json={"prompt": f"{PROMPT} #{index}"}) for index in range(2))
        )
    assert [response.status_code for response in responses] == [200, 200]
    waits = [response.json()["metadata"]["queue_wait_seconds"] for response in responses]
    assert max(waits) >= 0.5


async def test_each_backend_has_its_own_cap(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    fake_upstream.latency_seconds = 0.5
    settings = settings_for(fake_upstream, tmp_path, mv_max_concurrent_generations=1)
    async with serve_app(settings) as (_, client):
        responses = await asyncio.gather(
            *(client.post(VIDEO, json={"prompt": PROMPT, "backend": name}) for name in BACKENDS)
        )
    assert [response.status_code for response in responses] == [200, 200]
    assert [response.json()["metadata"]["queue_wait_seconds"] for response in responses] == [
        pytest.approx(0, abs=0.2)
    ] * 2


@pytest.mark.parametrize("backend", BACKENDS)
async def test_ten_concurrent_requests_finish_in_about_the_time_of_one(
    fake_upstream: FakeUpstream, tmp_path: Path, backend: str
) -> None:
    latency = 1.0
    fake_upstream.latency_seconds = latency
    async with serve_app(settings_for(fake_upstream, tmp_path)) as (_, client):
        started = time.monotonic()
        responses = await asyncio.gather(
            *(
                client.post(VIDEO, json={"prompt": f"scene {index}", "backend": backend})
                for index in range(10)
            )
        )
        wall = time.monotonic() - started
    assert [response.status_code for response in responses] == [200] * 10
    assert wall < 5 * latency, "one after another would take 10 x the latency"
    paths = {Path(response.json()["video_path"]) for response in responses}
    assert len(paths) == 10
    upstream = {fake_upstream.clip_content(item.file_id) for item in fake_upstream.generated_files}
    assert {path.read_bytes() for path in paths} == upstream


async def test_a_small_file_claiming_a_huge_canvas_is_refused_undecoded(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    buffer = io.BytesIO()
    Image.new("1", (12000, 14000)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 1024 * 1024
    response = await client.post(
        VIDEO, json={"prompt": PROMPT, "reference_image_base64": b64(buffer.getvalue())}
    )
    assert_error_shape(response, 400, "VALIDATION_ERROR")
    assert fake_upstream.requests == []
