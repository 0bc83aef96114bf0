"""The video backends end to end: the factory, then each backend through the HTTP app with the
real replicate and google-genai SDKs talking to the fake upstream."""

import asyncio
import base64
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.genai import types as genai_types
from PIL import Image

from backend.config import Settings
from backend.mv.configuration import load_configs
from backend.mv.providers.gemini.videos import download_headers
from backend.mv.providers.replicate.files import DATA_URI_MAX_BYTES
from backend.mv.runtime import build_runtime
from backend.mv.video_backends import DEFAULT_BACKEND, VideoBackendName
from backend.testing import fake_upstream as fake
from backend.testing.apps import (
    TEST_GEMINI_KEY,
    TEST_REPLICATE_TOKEN,
    live_settings,
    make_settings,
    serve_app,
    service_gemini_client,
)
from backend.testing.fake_upstream import FakeUpstream, Route

VIDEO = "/api/mv/generate_video"
PROMPT = "A silver robot walks through a neon city at sunset, slow tracking shot"
BACKENDS = ["replicate", "gemini"]
CREATE_ROUTE: dict[str, Route] = {
    "replicate": "replicate.create",
    "gemini": "gemini.predict_long_running",
}
DOWNLOAD_ROUTE: dict[str, Route] = {
    "replicate": "replicate.download",
    "gemini": "gemini.download",
}
GEMINI_VIDEO_MODEL = "veo-3.1-generate-preview"
FAST = {
    "mv_generation_timeout_seconds": 5.0,
    "mv_poll_interval_seconds": 0.05,
    "mv_upstream_max_attempts": 2,
}
ALL_OPTIONS = {
    "prompt": PROMPT,
    "negative_prompt": "blurry footage, extra limbs",
    "aspect_ratio": "9:16",
    "duration": 6,
    "generate_audio": False,
    "seed": 1234,
}


def settings_for(fake_upstream: FakeUpstream, tmp_path: Path, **overrides: Any) -> Settings:
    return live_settings(tmp_path, fake_upstream.base_url, **{**FAST, **overrides})


@pytest.fixture
async def client(fake_upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(settings_for(fake_upstream, tmp_path)) as (_, client):
        yield client


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 9), (200, 30, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def large_png_bytes() -> bytes:
    """A PNG above the size Replicate gets inline: random pixels do not compress."""
    side = 400
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) > DATA_URI_MAX_BYTES
    return buffer.getvalue()


def rules_for(aspect_ratio: str) -> str:
    return load_configs().video_params.rules_template.format(aspect_ratio=aspect_ratio)


def replicate_input(fake_upstream: FakeUpstream) -> dict[str, Any]:
    [create] = fake_upstream.requests_for("replicate.create")
    return create.json["input"]


def veo_body(fake_upstream: FakeUpstream) -> dict[str, Any]:
    [create] = fake_upstream.requests_for("gemini.predict_long_running")
    return create.json


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


# ---- the factory


@pytest.mark.parametrize("name", ["replicate", "gemini", "mock"])
async def test_registry_builds_the_backend_of_that_name(name: str, tmp_path: Path) -> None:
    runtime = await build_runtime(make_settings(tmp_path))
    try:
        assert runtime.video_backends[VideoBackendName(name)].name == name
    finally:
        await runtime.aclose()


def test_default_backend_is_replicate() -> None:
    assert DEFAULT_BACKEND == "replicate"


@pytest.mark.parametrize("name", ["replicate", "gemini", "mock"])
async def test_mock_mode_serves_every_backend_name_from_the_mock(name: str, tmp_path: Path) -> None:
    runtime = await build_runtime(make_settings(tmp_path, mv_mock_mode=True))
    try:
        assert runtime.video_backends[VideoBackendName(name)].name == "mock"
    finally:
        await runtime.aclose()


@pytest.mark.parametrize("mock_mode", [False, True])
@pytest.mark.parametrize("name", ["sora", "", "Replicate"])
async def test_unknown_backend_name_is_a_validation_error(
    name: str, mock_mode: bool, tmp_path: Path
) -> None:
    async with serve_app(make_settings(tmp_path, mv_mock_mode=mock_mode)) as (_, client):
        response = await client.post(VIDEO, json={"prompt": PROMPT, "backend": name})
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "backend"


# ---- Replicate


async def test_replicate_request_carries_the_prompt_rules_and_every_parameter(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post(VIDEO, json={**ALL_OPTIONS, "backend": "replicate"})
    assert response.status_code == 200, response.text
    [create] = fake_upstream.requests_for("replicate.create")
    assert create.path == "/v1/models/google/veo-3.1/predictions"
    assert create.headers["authorization"] == f"Bearer {TEST_REPLICATE_TOKEN}"
    assert replicate_input(fake_upstream) == {
        "prompt": f"{PROMPT}\n\n{rules_for('9:16')}",
        "negative_prompt": "blurry footage, extra limbs",
        "aspect_ratio": "9:16",
        "duration": 6,
        "generate_audio": False,
        "seed": 1234,
    }


async def test_replicate_prompt_gets_the_requests_own_rules_template(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    template = "Shot for {aspect_ratio} screens, {{no}} captions."
    response = await client.post(
        VIDEO, json={"prompt": PROMPT, "aspect_ratio": "9:16", "video_rules_template": template}
    )
    assert response.status_code == 200, response.text
    prompt = replicate_input(fake_upstream)["prompt"]
    assert prompt.startswith(PROMPT)
    assert prompt.endswith("Shot for 9:16 screens, {no} captions.")
    assert rules_for("9:16") not in prompt


async def test_replicate_neither_sends_nor_reports_the_person_generation_default(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post(VIDEO, json={**ALL_OPTIONS, "backend": "replicate"})
    metadata = response.json()["metadata"]
    assert metadata["parameters_not_applied"] == {}
    assert "person_generation" not in metadata["defaults_applied"]
    assert "person_generation" not in metadata["parameters_used"]
    assert "person_generation" not in replicate_input(fake_upstream)
    assert metadata["parameters_used"]["seed"] == 1234


async def test_replicate_gets_the_reference_image_as_a_data_uri(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    encoded = base64.b64encode(png_bytes()).decode()
    response = await client.post(VIDEO, json={"prompt": PROMPT, "reference_image_base64": encoded})
    assert response.status_code == 200, response.text
    assert replicate_input(fake_upstream)["reference_images"] == [
        f"data:image/png;base64,{encoded}"
    ]
    assert "reference_image" in response.json()["metadata"]["parameters_used"]
    assert fake_upstream.uploaded_files == []


async def test_replicate_gets_a_large_reference_image_as_an_uploaded_file(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    image = large_png_bytes()
    response = await client.post(
        VIDEO, json={"prompt": PROMPT, "reference_image_base64": base64.b64encode(image).decode()}
    )
    assert response.status_code == 200, response.text
    [upload] = fake_upstream.uploaded_files
    assert upload.content == image
    assert upload.content_type == "image/png"
    assert replicate_input(fake_upstream)["reference_images"] == [upload.url]
    [create_file] = fake_upstream.requests_for("replicate.files.create")
    assert create_file.headers["authorization"] == f"Bearer {TEST_REPLICATE_TOKEN}"


@pytest.mark.parametrize(
    ("fault", "status"),
    [(None, 200), (fake.PredictionFailed(), 502), (fake.prediction_flagged_sensitive(), 422)],
)
async def test_the_uploaded_reference_image_is_deleted_once_the_prediction_ends(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, fault: fake.Fault | None, status: int
) -> None:
    if fault is not None:
        fake_upstream.inject("replicate.create", fault)
    image = base64.b64encode(large_png_bytes()).decode()
    response = await client.post(VIDEO, json={"prompt": PROMPT, "reference_image_base64": image})
    assert response.status_code == status, response.text
    [upload] = fake_upstream.uploaded_files
    assert upload.deleted
    [delete] = fake_upstream.requests_for("replicate.files.delete")
    assert delete.path == f"/v1/files/{upload.file_id}"


@pytest.mark.parametrize(
    ("fault", "status", "error_code"),
    [
        (fake.replicate_unauthenticated(), 503, "BACKEND_NOT_CONFIGURED"),
        (fake.replicate_rate_limited(1), 429, "RATE_LIMIT_EXCEEDED"),
        (fake.replicate_server_error(500), 502, "BACKEND_ERROR"),
        (fake.DropConnection(), 502, "BACKEND_ERROR"),
    ],
)
async def test_a_failed_upload_maps_to_the_error_table_and_creates_no_prediction(
    client: httpx.AsyncClient,
    fake_upstream: FakeUpstream,
    fault: fake.Fault,
    status: int,
    error_code: str,
) -> None:
    fake_upstream.inject("replicate.files.create", fault, times=FAST["mv_upstream_max_attempts"])
    image = base64.b64encode(large_png_bytes()).decode()
    response = await client.post(VIDEO, json={"prompt": PROMPT, "reference_image_base64": image})
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == error_code
    assert fake_upstream.requests_for("replicate.create") == []


async def test_a_transient_upload_failure_is_retried(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("replicate.files.create", fake.replicate_server_error(503))
    image = large_png_bytes()
    response = await client.post(
        VIDEO, json={"prompt": PROMPT, "reference_image_base64": base64.b64encode(image).decode()}
    )
    assert response.status_code == 200, response.text
    assert len(fake_upstream.requests_for("replicate.files.create")) == 2
    [upload] = fake_upstream.uploaded_files
    assert upload.content == image


# ---- Gemini


async def test_gemini_request_carries_the_prompt_and_the_parameters_it_takes(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post(VIDEO, json={**ALL_OPTIONS, "backend": "gemini"})
    assert response.status_code == 200, response.text
    [create] = fake_upstream.requests_for("gemini.predict_long_running")
    assert create.path == f"/v1beta/models/{GEMINI_VIDEO_MODEL}:predictLongRunning"
    assert create.headers["x-goog-api-key"] == TEST_GEMINI_KEY
    body = veo_body(fake_upstream)
    assert body["instances"] == [{"prompt": f"{PROMPT}\n\n{rules_for('9:16')}"}]
    parameters = body["parameters"]
    assert parameters["aspectRatio"] == "9:16"
    assert parameters["durationSeconds"] == 6
    assert parameters["negativePrompt"] == "blurry footage, extra limbs"
    assert parameters["personGeneration"] == "allow_all"


async def test_gemini_reports_seed_and_audio_as_not_applied_and_never_sends_them(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post(VIDEO, json={**ALL_OPTIONS, "backend": "gemini"})
    assert response.status_code == 200, response.text
    metadata = response.json()["metadata"]
    assert set(metadata["parameters_not_applied"]) == {"seed", "generate_audio"}
    assert "seed" not in metadata["parameters_used"]
    assert "generate_audio" not in metadata["parameters_used"]
    body = veo_body(fake_upstream)
    assert not {"seed", "generateAudio"} & set(body["parameters"])
    assert not {"seed", "generateAudio"} & set(body["instances"][0])


async def test_gemini_gets_the_reference_image_as_reference_images(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    image = png_bytes()
    response = await client.post(
        VIDEO,
        json={
            "prompt": PROMPT,
            "backend": "gemini",
            "reference_image_base64": base64.b64encode(image).decode(),
        },
    )
    assert response.status_code == 200, response.text
    [reference] = veo_body(fake_upstream)["instances"][0]["referenceImages"]
    assert base64.b64decode(reference["image"]["bytesBase64Encoded"]) == image
    assert reference["image"]["mimeType"] == "image/png"
    assert reference["referenceType"] == "ASSET"
    assert veo_body(fake_upstream)["parameters"]["personGeneration"] == "allow_adult"


async def test_gemini_create_body_is_the_one_google_genai_sends(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    image = large_png_bytes()
    request = {
        **ALL_OPTIONS,
        "backend": "gemini",
        "person_generation": "allow_adult",
        "reference_image_base64": base64.b64encode(image).decode(),
    }
    response = await client.post(VIDEO, json=request)
    assert response.status_code == 200, response.text
    ours = veo_body(fake_upstream)
    fake_upstream.reset()
    reference = genai_types.VideoGenerationReferenceImage(
        image=genai_types.Image(image_bytes=image, mime_type="image/png"),
        reference_type=genai_types.VideoGenerationReferenceType.ASSET,
    )
    async with service_gemini_client(settings_for(fake_upstream, tmp_path)) as sdk:
        await sdk.aio.models.generate_videos(
            model=GEMINI_VIDEO_MODEL,
            source=genai_types.GenerateVideosSource(prompt=ours["instances"][0]["prompt"]),
            config=genai_types.GenerateVideosConfig(
                number_of_videos=1,
                reference_images=[reference],
                aspect_ratio="9:16",
                duration_seconds=6,
                negative_prompt="blurry footage, extra limbs",
                person_generation="allow_adult",
            ),
        )
    assert ours == veo_body(fake_upstream)
    [encoded] = ours["instances"][0]["referenceImages"]
    assert base64.b64decode(encoded["image"]["bytesBase64Encoded"]) == image


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [{"prompt": "p"}], "parameters": {"seed": 1}}, 'Unknown name "seed"'),
        ({"instances": [{"prompt": "p", "generateAudio": True}]}, 'Unknown name "generateAudio"'),
        ({"instances": []}, "exactly one instance"),
        (
            {"instances": [{"prompt": "p", "referenceImages": [{"image": {"mimeType": "x"}}]}]},
            "referenceType",
        ),
        (
            {
                "instances": [
                    {
                        "prompt": "p",
                        "referenceImages": [
                            {
                                "image": {"bytesBase64Encoded": "*", "mimeType": "image/png"},
                                "referenceType": "ASSET",
                            }
                        ],
                    }
                ]
            },
            "not base64",
        ),
    ],
)
async def test_the_fake_refuses_a_veo_body_the_api_would_refuse(
    fake_upstream: FakeUpstream, body: dict[str, Any], message: str
) -> None:
    async with httpx.AsyncClient(base_url=fake_upstream.base_url) as http:
        response = await http.post(
            f"/v1beta/models/{GEMINI_VIDEO_MODEL}:predictLongRunning",
            json=body,
            headers={"x-goog-api-key": TEST_GEMINI_KEY},
        )
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert message in response.json()["error"]["message"]


async def test_gemini_polls_the_operation_until_it_is_done(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.latency_seconds = 0.4
    response = await client.post(VIDEO, json={"prompt": PROMPT, "backend": "gemini"})
    assert response.status_code == 200, response.text
    polls = fake_upstream.requests_for("gemini.operation")
    assert len(polls) >= 3
    assert len({poll.path for poll in polls}) == 1
    assert polls[0].path.startswith(f"/v1beta/models/{GEMINI_VIDEO_MODEL}/operations/")


async def test_gemini_download_sends_the_api_key_header(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post(VIDEO, json={"prompt": PROMPT, "backend": "gemini"})
    assert response.status_code == 200, response.text
    [download] = fake_upstream.requests_for("gemini.download")
    assert download.headers["x-goog-api-key"] == TEST_GEMINI_KEY
    assert "key" not in download.query


# ---- both backends: the clip


@pytest.mark.parametrize("backend", BACKENDS)
async def test_clip_on_disk_is_the_bytes_upstream_served(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, backend: str
) -> None:
    fake_upstream.clip_bytes = 3 * 1024 * 1024 + 17
    response = await client.post(VIDEO, json={"prompt": PROMPT, "backend": backend})
    assert response.status_code == 200, response.text
    [generated] = fake_upstream.generated_files
    on_disk = Path(response.json()["video_path"]).read_bytes()
    assert on_disk == fake_upstream.clip_content(generated.file_id)
    assert response.json()["metadata"]["backend_used"] == backend


# ---- both backends: the error table, driven from the provider


ERROR_TABLE = [
    pytest.param(
        "replicate", "replicate.create", fake.prediction_flagged_sensitive(), 422,
        "CONTENT_POLICY_VIOLATION", id="replicate-flagged-sensitive",
    ),
    pytest.param(
        "gemini", "gemini.predict_long_running", fake.VeoFiltered(), 422,
        "CONTENT_POLICY_VIOLATION", id="gemini-rai-filtered",
    ),
    pytest.param(
        "replicate", "replicate.create", fake.replicate_rate_limited(1), 429,
        "RATE_LIMIT_EXCEEDED", id="replicate-429",
    ),
    pytest.param(
        "gemini", "gemini.predict_long_running", fake.google_rate_limited(1), 429,
        "RATE_LIMIT_EXCEEDED", id="gemini-429",
    ),
    pytest.param(
        "replicate", "replicate.create", fake.PredictionFailed(), 502, "GENERATION_FAILED",
        id="replicate-prediction-failed",
    ),
    pytest.param(
        "gemini", "gemini.predict_long_running", fake.VeoOperationError(), 502,
        "GENERATION_FAILED", id="gemini-operation-error",
    ),
    pytest.param(
        "replicate", "replicate.create", fake.replicate_server_error(500), 502, "BACKEND_ERROR",
        id="replicate-500",
    ),
    pytest.param(
        "replicate", "replicate.create", fake.replicate_server_error(503), 502, "BACKEND_ERROR",
        id="replicate-503",
    ),
    pytest.param(
        "gemini", "gemini.predict_long_running", fake.google_server_error(500), 502,
        "BACKEND_ERROR", id="gemini-500",
    ),
    pytest.param(
        "gemini", "gemini.predict_long_running", fake.google_server_error(503), 502,
        "BACKEND_ERROR", id="gemini-503",
    ),
    pytest.param(
        "replicate", "replicate.create", fake.DropConnection(), 502, "BACKEND_ERROR",
        id="replicate-dropped-connection",
    ),
    pytest.param(
        "gemini", "gemini.predict_long_running", fake.DropConnection(), 502, "BACKEND_ERROR",
        id="gemini-dropped-connection",
    ),
    pytest.param(
        "replicate", "replicate.download", fake.replicate_server_error(500), 502,
        "BACKEND_ERROR", id="replicate-download-500",
    ),
    pytest.param(
        "gemini", "gemini.download", fake.google_server_error(500), 502, "BACKEND_ERROR",
        id="gemini-download-500",
    ),
    pytest.param(
        "replicate", "replicate.create", fake.replicate_unauthenticated(), 503,
        "BACKEND_NOT_CONFIGURED", id="replicate-401",
    ),
    pytest.param(
        "gemini", "gemini.predict_long_running", fake.google_api_key_invalid(), 503,
        "BACKEND_NOT_CONFIGURED", id="gemini-api-key-invalid",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("backend", "route", "fault", "status", "error_code"), ERROR_TABLE)
async def test_provider_failures_map_to_the_error_table(
    client: httpx.AsyncClient,
    fake_upstream: FakeUpstream,
    tmp_path: Path,
    backend: str,
    route: Route,
    fault: fake.Fault,
    status: int,
    error_code: str,
) -> None:
    fake_upstream.inject(route, fault, times=FAST["mv_upstream_max_attempts"])
    response = await client.post(VIDEO, json={"prompt": PROMPT, "backend": backend})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == error_code
    assert body["backend_used"] == backend
    assert body["request_id"] == response.headers["x-request-id"]
    assert TEST_REPLICATE_TOKEN not in response.text
    assert TEST_GEMINI_KEY not in response.text
    assert files_in(tmp_path / "videos") == []


@pytest.mark.parametrize(
    ("backend", "fault"),
    [
        ("replicate", fake.replicate_rate_limited(7)),
        ("gemini", fake.google_rate_limited(7)),
    ],
)
async def test_rate_limit_answer_carries_the_providers_retry_after(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, backend: str, fault: fake.Fault
) -> None:
    fake_upstream.inject(CREATE_ROUTE[backend], fault, times=2)
    response = await client.post(VIDEO, json={"prompt": PROMPT, "backend": backend})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("backend", "fault"),
    [
        ("replicate", fake.replicate_server_error(503)),
        ("gemini", fake.google_server_error(503)),
    ],
)
async def test_a_transient_create_failure_is_retried_and_succeeds(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, backend: str, fault: fake.Fault
) -> None:
    fake_upstream.inject(CREATE_ROUTE[backend], fault)
    response = await client.post(VIDEO, json={"prompt": PROMPT, "backend": backend})
    assert response.status_code == 200, response.text
    assert len(fake_upstream.requests_for(CREATE_ROUTE[backend])) == 2


@pytest.mark.parametrize(
    ("backend", "missing", "present"),
    [
        ("replicate", "REPLICATE_API_TOKEN", {"gemini_api_key": TEST_GEMINI_KEY}),
        ("gemini", "GEMINI_API_KEY", {"replicate_api_token": TEST_REPLICATE_TOKEN}),
    ],
)
async def test_missing_key_is_a_503_before_any_upstream_call(
    fake_upstream: FakeUpstream,
    tmp_path: Path,
    backend: str,
    missing: str,
    present: dict[str, str],
) -> None:
    settings = make_settings(
        tmp_path,
        replicate_base_url=fake_upstream.base_url,
        google_gemini_base_url=fake_upstream.base_url,
        **present,
    )
    async with serve_app(settings) as (_, client):
        response = await client.post(VIDEO, json={"prompt": PROMPT, "backend": backend})
    assert response.status_code == 503
    assert response.json()["error_code"] == "BACKEND_NOT_CONFIGURED"
    assert missing in response.json()["message"]
    assert fake_upstream.requests == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_generation_beyond_the_timeout_is_a_504(
    fake_upstream: FakeUpstream, tmp_path: Path, backend: str
) -> None:
    fake_upstream.inject(CREATE_ROUTE[backend], fake.SlowGeneration(30))
    settings = settings_for(fake_upstream, tmp_path, mv_generation_timeout_seconds=1.0)
    async with serve_app(settings) as (_, client):
        response = await client.post(VIDEO, json={"prompt": PROMPT, "backend": backend})
    assert response.status_code == 504, response.text
    assert response.json()["error_code"] == "GENERATION_TIMEOUT"
    assert response.json()["backend_used"] == backend
    assert files_in(tmp_path / "videos") == []


async def test_replicate_prediction_is_cancelled_when_the_timeout_fires(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("replicate.create", fake.SlowGeneration(30))
    settings = settings_for(fake_upstream, tmp_path, mv_generation_timeout_seconds=1.0)
    async with serve_app(settings) as (_, client):
        response = await client.post(VIDEO, json={"prompt": PROMPT})
        assert response.status_code == 504
        for _ in range(100):
            if fake_upstream.requests_for("replicate.cancel"):
                break
            await asyncio.sleep(0.02)
    [cancel] = fake_upstream.requests_for("replicate.cancel")
    prediction_path = fake_upstream.requests_for("replicate.get")[0].path
    assert cancel.path == f"{prediction_path}/cancel"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_download_interrupted_every_time_is_a_502_and_leaves_no_file(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, tmp_path: Path, backend: str
) -> None:
    fake_upstream.inject(
        DOWNLOAD_ROUTE[backend],
        fake.DropConnection(after_bytes=100_000),
        times=FAST["mv_upstream_max_attempts"],
    )
    response = await client.post(VIDEO, json={"prompt": PROMPT, "backend": backend})
    assert response.status_code == 502, response.text
    assert response.json()["error_code"] == "BACKEND_ERROR"
    assert fake_upstream.requests_for(DOWNLOAD_ROUTE[backend])
    assert files_in(tmp_path / "videos") == []


@pytest.mark.parametrize(
    ("uri", "gets_key"),
    [
        ("https://api.example/v1beta/files/abc:download?alt=media", True),
        ("https://storage.example/abc.mp4", False),
        ("http://api.example/v1beta/files/abc:download", False),
    ],
)
def test_the_gemini_key_goes_only_to_the_api_over_https(uri: str, gets_key: bool) -> None:
    headers = download_headers(uri, "secret", "https://api.example")
    assert (headers == {"x-goog-api-key": "secret"}) is gets_key
    assert (headers is None) is not gets_key
