"""The real google-genai and replicate SDKs work against the fake upstream, faults included."""

import asyncio
import io
import json
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import replicate
from google import genai
from google.genai import errors, types
from PIL import Image
from replicate.exceptions import ModelError, ReplicateError
from replicate.helpers import FileOutput

from backend.testing.apps import make_settings, service_gemini_client
from backend.testing.fake_upstream import (
    DEFAULT_CLIP_BYTES,
    GENERIC_MODEL_ERROR,
    SENSITIVE_CONTENT_ERROR,
    CandidateBlocked,
    DropConnection,
    EmptyDescription,
    FakeUpstream,
    FewerScenes,
    HttpError,
    PredictionFailed,
    PromptBlocked,
    RawText,
    Route,
    SlowGeneration,
    VeoFiltered,
    VeoOperationError,
    google_api_key_invalid,
    google_rate_limited,
    google_server_error,
    prediction_flagged_sensitive,
    replicate_rate_limited,
    replicate_server_error,
    replicate_unauthenticated,
)

GEMINI_KEY = "test-gemini-key"
REPLICATE_TOKEN = "r8_test_token"
TEXT_MODEL = "gemini-2.5-flash"
VEO_MODEL = "veo-3.1-generate-preview"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def gemini(fake_upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[genai.Client]:
    """The service's own Gemini client: on its aiohttp session, with the SDK's own retries
    off."""
    settings = make_settings(
        tmp_path, gemini_api_key=GEMINI_KEY, google_gemini_base_url=fake_upstream.base_url
    )
    async with service_gemini_client(settings) as client:
        yield client


@pytest.fixture
async def replicate_client(fake_upstream: FakeUpstream) -> AsyncIterator[replicate.Client]:
    # replicate.Client cannot be closed; owning its transport lets the test close it.
    async with httpx.AsyncHTTPTransport() as transport:
        client = replicate.Client(
            api_token=REPLICATE_TOKEN, base_url=fake_upstream.base_url, transport=transport
        )
        client.poll_interval = 0.02
        yield client


@pytest.fixture
async def http(fake_upstream: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    """A plain client that trusts the fake through SSL_CERT_FILE, as the app's will."""
    async with httpx.AsyncClient(base_url=fake_upstream.base_url, follow_redirects=True) as client:
        yield client


async def _scenes(gemini: genai.Client, prompt: str) -> list[dict[str, str]]:
    response = await gemini.aio.models.generate_content(model=TEXT_MODEL, contents=prompt)
    assert response.text is not None
    return json.loads(response.text)["scenes"]


async def _create_video(gemini: genai.Client, **config: Any) -> types.GenerateVideosOperation:
    return await gemini.aio.models.generate_videos(
        model=VEO_MODEL,
        source=types.GenerateVideosSource(prompt="A neon cat drives at night"),
        config=types.GenerateVideosConfig(**config),
    )


async def _until_done(
    gemini: genai.Client, operation: types.GenerateVideosOperation
) -> types.GenerateVideosOperation:
    async with asyncio.timeout(5):
        while not operation.done:
            await asyncio.sleep(0.02)
            operation = await gemini.aio.operations.get(operation)
    return operation


# --------------------------------------------------------------------------- Gemini text


@pytest.mark.parametrize(
    ("prompt", "system_instruction", "expected_count"),
    [
        ("Write EXACTLY 3 scenes for: a cat on the moon", None, 3),
        ("A cat on the moon", "Return exactly 6 scenes as JSON.", 6),
        ("A cat on the moon", None, 4),
    ],
    ids=["count-in-prompt", "count-in-system-instruction", "default"],
)
async def test_generate_content_answers_the_scene_count_the_prompt_asks_for(
    gemini: genai.Client, prompt: str, system_instruction: str | None, expected_count: int
) -> None:
    response = await gemini.aio.models.generate_content(
        model=TEXT_MODEL,
        contents=prompt,
        config=types.GenerateContentConfig(
            system_instruction=system_instruction, response_mime_type="application/json"
        ),
    )

    assert response.text is not None
    scenes = json.loads(response.text)["scenes"]
    assert len(scenes) == expected_count
    descriptions = [scene["description"] for scene in scenes]
    assert len(set(descriptions)) == expected_count
    assert all(prompt in description for description in descriptions)
    assert all(scene["negative_description"] for scene in scenes)
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata is not None
    assert response.usage_metadata.total_token_count
    assert response.model_version == TEXT_MODEL


async def test_generate_content_records_the_key_and_the_verbatim_prompt(
    gemini: genai.Client, fake_upstream: FakeUpstream
) -> None:
    await _scenes(gemini, "  A prompt, kept   verbatim  ")

    (request,) = fake_upstream.requests_for("gemini.generate_content")
    assert request.headers["x-goog-api-key"] == GEMINI_KEY
    assert request.path == f"/v1beta/models/{TEXT_MODEL}:generateContent"
    assert request.json["contents"][0]["parts"][0]["text"] == "  A prompt, kept   verbatim  "


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (
            PromptBlocked(),
            lambda r: (
                r.prompt_feedback.block_reason == types.BlockedReason.SAFETY
                and r.candidates is None
                and r.text is None
            ),
        ),
        (
            CandidateBlocked(),
            lambda r: r.candidates[0].finish_reason == types.FinishReason.SAFETY and r.text is None,
        ),
        (RawText('{"scenes": [{"descr'), lambda r: r.text == '{"scenes": [{"descr'),
        (FewerScenes(), lambda r: len(json.loads(r.text)["scenes"]) == 3),
        (EmptyDescription(1), lambda r: json.loads(r.text)["scenes"][1]["description"] == ""),
    ],
    ids=["prompt-blocked", "candidate-safety", "malformed-json", "too-few", "empty-description"],
)
async def test_generate_content_faults_reach_the_sdk_as_the_provider_sends_them(
    gemini: genai.Client,
    fake_upstream: FakeUpstream,
    fault: Any,
    check: Callable[[types.GenerateContentResponse], bool],
) -> None:
    fake_upstream.inject("gemini.generate_content", fault)

    response = await gemini.aio.models.generate_content(model=TEXT_MODEL, contents="A cat")

    assert check(response)
    assert len(await _scenes(gemini, "A cat")) == 4, "a fault is consumed once"


async def test_generate_content_takes_the_latency_and_a_slow_fault_overrides_it(
    gemini: genai.Client, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.latency_seconds = 0.2
    fake_upstream.inject("gemini.generate_content", SlowGeneration(0.4))

    started = time.monotonic()
    await _scenes(gemini, "A cat")
    slow = time.monotonic() - started
    await _scenes(gemini, "A cat")
    normal = time.monotonic() - started - slow

    assert slow >= 0.4
    assert 0.2 <= normal < 0.4


@pytest.mark.parametrize(
    ("fault", "error_type", "code", "status", "detail"),
    [
        (
            google_rate_limited(),
            errors.ClientError,
            429,
            "RESOURCE_EXHAUSTED",
            ("retryDelay", "7s"),
        ),
        (
            google_api_key_invalid(),
            errors.ClientError,
            400,
            "INVALID_ARGUMENT",
            ("reason", "API_KEY_INVALID"),
        ),
        (google_server_error(500), errors.ServerError, 500, "INTERNAL", None),
        (google_server_error(503), errors.ServerError, 503, "UNAVAILABLE", None),
    ],
    ids=["429", "bad-key", "500", "503"],
)
async def test_google_http_errors_surface_as_api_errors_without_sdk_retries(
    gemini: genai.Client,
    fake_upstream: FakeUpstream,
    fault: HttpError,
    error_type: type[errors.APIError],
    code: int,
    status: str,
    detail: tuple[str, str] | None,
) -> None:
    fake_upstream.inject("gemini.generate_content", fault)

    with pytest.raises(error_type) as caught:
        await gemini.aio.models.generate_content(model=TEXT_MODEL, contents="A cat")

    assert (caught.value.code, caught.value.status) == (code, status)
    if detail is not None:
        key, value = detail
        assert any(item.get(key) == value for item in caught.value.details["error"]["details"])
    assert len(fake_upstream.requests_for("gemini.generate_content")) == 1


@pytest.mark.parametrize(
    ("fault", "body"),
    [
        (HttpError(418), b""),
        (HttpError(409, {"why": "conflict"}, {"X-Trace": "t-1"}), b'{"why":"conflict"}'),
    ],
    ids=["empty-body", "json-body-and-header"],
)
async def test_any_http_error_is_sent_as_scripted(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient, fault: HttpError, body: bytes
) -> None:
    fake_upstream.inject("gemini.generate_content", fault)

    response = await http.post(
        f"/v1beta/models/{TEXT_MODEL}:generateContent",
        json={"contents": []},
        headers={"x-goog-api-key": GEMINI_KEY},
    )

    assert (response.status_code, response.content) == (fault.status, body)
    assert response.headers.get("x-trace") == fault.headers.get("X-Trace")


# --------------------------------------------------------------------------- Gemini video


async def test_veo_operation_finishes_after_the_latency_and_its_clip_downloads(
    gemini: genai.Client, fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    fake_upstream.latency_seconds = 0.3
    operation = await _create_video(gemini)
    assert not (await gemini.aio.operations.get(operation)).done

    operation = await _until_done(gemini, operation)

    assert operation.response is not None
    assert operation.response.generated_videos is not None
    video = operation.response.generated_videos[0].video
    assert video is not None
    (generated,) = fake_upstream.generated_files
    assert video.uri == generated.url
    clip = await http.get(generated.url, headers={"x-goog-api-key": GEMINI_KEY})
    assert clip.status_code == 200
    assert clip.headers["content-type"] == "video/mp4"
    assert clip.history[0].status_code == 302
    assert clip.content == fake_upstream.clip_content(generated.file_id)
    assert clip.content[4:8] == b"ftyp"
    assert len(clip.content) == fake_upstream.clip_bytes
    sdk_bytes = await gemini.aio.files.download(file=operation.response.generated_videos[0])
    assert sdk_bytes == clip.content
    operation_path = f"/v1beta/models/{VEO_MODEL}/operations/"
    assert fake_upstream.requests_for("gemini.operation")[0].path.startswith(operation_path)


async def test_veo_request_carries_prompt_and_parameters_and_yields_each_sample(
    gemini: genai.Client, fake_upstream: FakeUpstream
) -> None:
    operation = await _create_video(
        gemini, aspect_ratio="9:16", negative_prompt="rain", duration_seconds=8, number_of_videos=2
    )
    operation = await _until_done(gemini, operation)

    (request,) = fake_upstream.requests_for("gemini.predict_long_running")
    assert request.json["instances"] == [{"prompt": "A neon cat drives at night"}]
    assert request.json["parameters"] == {
        "aspectRatio": "9:16",
        "negativePrompt": "rain",
        "durationSeconds": 8,
        "sampleCount": 2,
    }
    assert operation.response is not None
    assert len(operation.response.generated_videos or []) == 2
    assert len({file.file_id for file in fake_upstream.generated_files}) == 2


def test_clips_differ_per_file_and_follow_clip_bytes(fake_upstream: FakeUpstream) -> None:
    fake_upstream.clip_bytes = 4096

    first, second = fake_upstream.clip_content("aaa111"), fake_upstream.clip_content("bbb222")

    assert len(first) == len(second) == 4096
    assert first != second


async def test_gemini_download_without_api_key_is_forbidden(
    gemini: genai.Client, fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    await _until_done(gemini, await _create_video(gemini))

    response = await http.get(fake_upstream.generated_files[0].url)

    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


async def test_veo_filtered_operation_is_done_with_rai_counts_and_no_samples(
    gemini: genai.Client, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("gemini.predict_long_running", VeoFiltered(("blocked: celebrity",)))

    operation = await _until_done(gemini, await _create_video(gemini))

    assert operation.error is None
    assert operation.response is not None
    assert operation.response.rai_media_filtered_count == 1
    assert operation.response.rai_media_filtered_reasons == ["blocked: celebrity"]
    assert operation.response.generated_videos is None
    assert fake_upstream.generated_files == []


async def test_veo_failed_operation_is_done_with_an_error_status(
    gemini: genai.Client, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("gemini.predict_long_running", VeoOperationError(3, "bad image"))

    operation = await _until_done(gemini, await _create_video(gemini))

    assert operation.error == {"code": 3, "message": "bad image"}
    assert operation.response is None


async def test_slow_veo_generation_only_delays_its_own_operation(
    gemini: genai.Client, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("gemini.predict_long_running", SlowGeneration(3600))

    slow = await _create_video(gemini)
    normal = await _until_done(gemini, await _create_video(gemini))

    assert normal.done
    assert not (await gemini.aio.operations.get(slow)).done


@pytest.mark.parametrize(
    "route", ["gemini.predict_long_running", "gemini.operation", "gemini.download"]
)
async def test_google_http_error_on_each_video_route(
    gemini: genai.Client, fake_upstream: FakeUpstream, route: Route
) -> None:
    async def create_poll_and_download() -> bytes:
        operation = await _until_done(gemini, await _create_video(gemini))
        assert operation.response is not None
        assert operation.response.generated_videos is not None
        return await gemini.aio.files.download(file=operation.response.generated_videos[0])

    fake_upstream.inject(route, google_server_error(503))

    with pytest.raises(errors.ServerError) as caught:
        await create_poll_and_download()

    assert caught.value.code == 503


# --------------------------------------------------------------------------- Replicate


@pytest.mark.parametrize(
    ("model_input", "size", "image_format"),
    [
        ({}, (64, 64), "PNG"),
        ({"aspect_ratio": "16:9", "output_format": "png"}, (114, 64), "PNG"),
        ({"aspect_ratio": "9:16", "output_format": "jpg"}, (64, 114), "JPEG"),
    ],
    ids=["default", "16:9-png", "9:16-jpg"],
)
async def test_imagen_prediction_held_by_prefer_wait_succeeds_with_a_real_image(
    replicate_client: replicate.Client,
    fake_upstream: FakeUpstream,
    http: httpx.AsyncClient,
    model_input: dict[str, str],
    size: tuple[int, int],
    image_format: str,
) -> None:
    prediction = await replicate_client.models.predictions.async_create(
        model="google/imagen-4", input={"prompt": "A red fox", **model_input}, wait=5
    )

    assert prediction.status == "succeeded"
    assert prediction.model == "google/imagen-4"
    assert prediction.completed_at is not None
    image_bytes = (await http.get(prediction.output)).content
    image = Image.open(io.BytesIO(image_bytes))
    assert (image.size, image.format) == (size, image_format)
    (generated,) = fake_upstream.generated_files
    assert image_bytes == fake_upstream.file_content(generated.file_id)
    (request,) = fake_upstream.requests_for("replicate.create")
    assert request.headers["prefer"] == "wait=5"
    assert request.headers["authorization"] == f"Bearer {REPLICATE_TOKEN}"
    assert request.path == "/v1/models/google/imagen-4/predictions"


async def test_veo_prediction_output_is_the_clip_and_input_arrives_verbatim(
    replicate_client: replicate.Client, fake_upstream: FakeUpstream
) -> None:
    model_input = {
        "prompt": "  A cat,  verbatim ",
        "reference_images": ["data:image/png;base64,iVBORw0KGgo="],
    }

    output = await replicate_client.async_run("google/veo-3.1", input=model_input)

    (generated,) = fake_upstream.generated_files
    assert output.url == generated.url
    assert await output.aread() == fake_upstream.clip_content(generated.file_id)
    (request,) = fake_upstream.requests_for("replicate.create")
    assert request.json == {"input": model_input}
    assert request.headers["prefer"] == "wait"


async def test_prediction_without_prefer_starts_then_is_polled_to_success(
    replicate_client: replicate.Client, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.latency_seconds = 0.3

    prediction = await replicate_client.models.predictions.async_create(
        model="google/veo-3.1", input={"prompt": "A cat"}
    )
    assert (prediction.status, prediction.output) == ("starting", None)
    assert (await replicate_client.predictions.async_get(prediction.id)).status == "processing"
    await prediction.async_wait()

    assert prediction.status == "succeeded"
    assert prediction.output == fake_upstream.generated_files[0].url
    assert prediction.urls is not None
    assert prediction.urls["get"] == f"{fake_upstream.base_url}/v1/predictions/{prediction.id}"


async def test_slow_prediction_answers_starting_once_prefer_wait_runs_out(
    replicate_client: replicate.Client, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("replicate.create", SlowGeneration(3600))

    started = time.monotonic()
    prediction = await replicate_client.models.predictions.async_create(
        model="google/veo-3.1", input={"prompt": "A cat"}, wait=1
    )

    assert 1 <= time.monotonic() - started < 2
    assert prediction.status == "starting"
    assert (await replicate_client.predictions.async_get(prediction.id)).status == "processing"


async def test_cancel_marks_a_running_prediction_canceled(
    replicate_client: replicate.Client, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("replicate.create", SlowGeneration(3600))
    prediction = await replicate_client.models.predictions.async_create(
        model="google/veo-3.1", input={"prompt": "A cat"}
    )

    await prediction.async_cancel()

    assert prediction.status == "canceled"
    assert (await replicate_client.predictions.async_get(prediction.id)).status == "canceled"
    (cancel,) = fake_upstream.requests_for("replicate.cancel")
    assert cancel.path == f"/v1/predictions/{prediction.id}/cancel"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (prediction_flagged_sensitive(), SENSITIVE_CONTENT_ERROR),
        (PredictionFailed(), GENERIC_MODEL_ERROR),
    ],
    ids=["flagged-sensitive", "model-error"],
)
async def test_failed_prediction_carries_the_provider_error(
    replicate_client: replicate.Client,
    fake_upstream: FakeUpstream,
    fault: PredictionFailed,
    error: str,
) -> None:
    fake_upstream.inject("replicate.create", fault)

    with pytest.raises(ModelError) as caught:
        await replicate_client.async_run("google/veo-3.1", input={"prompt": "A cat"})

    assert caught.value.prediction.status == "failed"
    assert caught.value.prediction.error == error
    assert caught.value.prediction.output is None
    assert fake_upstream.generated_files == []


@pytest.mark.parametrize(
    ("fault", "status", "title"),
    [
        (replicate_unauthenticated(), 401, "Unauthenticated"),
        (replicate_rate_limited(), 429, "Request was throttled."),
        (replicate_server_error(500), 500, "Internal Server Error"),
        (replicate_server_error(503), 503, "Service Unavailable"),
    ],
    ids=["401", "429", "500", "503"],
)
async def test_replicate_http_errors_surface_as_replicate_errors(
    fake_upstream: FakeUpstream, fault: HttpError, status: int, title: str
) -> None:
    seen_headers: list[httpx.Headers] = []

    async def keep_headers(response: httpx.Response) -> None:
        seen_headers.append(response.headers)

    fake_upstream.inject("replicate.create", fault)

    # The SDK's ReplicateError drops response headers; an event hook is how to read them.
    async with httpx.AsyncHTTPTransport() as transport:
        client = replicate.Client(
            api_token=REPLICATE_TOKEN,
            base_url=fake_upstream.base_url,
            transport=transport,
            event_hooks={"response": [keep_headers]},
        )
        with pytest.raises(ReplicateError) as caught:
            await client.models.predictions.async_create(
                model="google/veo-3.1", input={"prompt": "A cat"}, wait=5
            )

    assert (caught.value.status, caught.value.title) == (status, title)
    assert caught.value.detail
    assert seen_headers[0].get("retry-after") == ("7" if status == 429 else None)


async def test_replicate_sdk_retries_a_prediction_get_on_503(
    replicate_client: replicate.Client, fake_upstream: FakeUpstream
) -> None:
    prediction = await replicate_client.models.predictions.async_create(
        model="google/veo-3.1", input={"prompt": "A cat"}
    )
    assert prediction.status == "starting", "no Prefer: answered before any work is done"
    fake_upstream.inject("replicate.get", replicate_server_error(503), times=2)

    fetched = await replicate_client.predictions.async_get(prediction.id)

    assert fetched.status == "succeeded"
    assert len(fake_upstream.requests_for("replicate.get")) == 3


@pytest.mark.parametrize("route", ["replicate.get", "replicate.cancel", "replicate.download"])
async def test_replicate_http_error_on_each_follow_up_route(
    replicate_client: replicate.Client, fake_upstream: FakeUpstream, route: Route
) -> None:
    prediction = await replicate_client.models.predictions.async_create(
        model="google/veo-3.1", input={"prompt": "A cat"}, wait=5
    )
    calls = {
        "replicate.get": lambda: replicate_client.predictions.async_get(prediction.id),
        "replicate.cancel": lambda: replicate_client.predictions.async_cancel(prediction.id),
        "replicate.download": FileOutput(prediction.output, replicate_client).aread,
    }
    fake_upstream.inject(route, replicate_server_error(500))

    with pytest.raises((ReplicateError, httpx.HTTPStatusError)) as caught:
        await calls[route]()

    error = caught.value
    status = error.status if isinstance(error, ReplicateError) else error.response.status_code
    assert status == 500


async def test_requests_without_credentials_are_refused(
    fake_upstream: FakeUpstream, http: httpx.AsyncClient
) -> None:
    replicate_answer = await http.post(
        "/v1/models/google/veo-3.1/predictions", json={"input": {"prompt": "A cat"}}
    )
    gemini_answer = await http.post(f"/v1beta/models/{TEXT_MODEL}:generateContent", json={})

    assert replicate_answer.status_code == 401
    assert replicate_answer.json()["title"] == "Unauthenticated"
    assert gemini_answer.status_code == 403
    assert len(fake_upstream.requests) == 2


# --------------------------------------------------------------------------- connection drops


async def test_dropped_connection_surfaces_as_a_transport_error_in_both_sdks(
    gemini: genai.Client, replicate_client: replicate.Client, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("gemini.generate_content", DropConnection())
    fake_upstream.inject("replicate.create", DropConnection())

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await gemini.aio.models.generate_content(model=TEXT_MODEL, contents="A cat")
    with pytest.raises(httpx.TransportError):
        await replicate_client.models.predictions.async_create(
            model="google/veo-3.1", input={"prompt": "A cat"}
        )

    assert len(await _scenes(gemini, "A cat")) == 4, "the next request is served"


@pytest.mark.parametrize("after_bytes", [None, 0, 100_000])
@pytest.mark.parametrize("route", ["gemini.download", "replicate.download"])
async def test_download_drop_interrupts_the_clip(
    gemini: genai.Client,
    replicate_client: replicate.Client,
    fake_upstream: FakeUpstream,
    http: httpx.AsyncClient,
    route: Route,
    after_bytes: int | None,
) -> None:
    if route == "gemini.download":
        await _until_done(gemini, await _create_video(gemini))
    else:
        await replicate_client.async_run("google/veo-3.1", input={"prompt": "A cat"})
    received = bytearray()

    async def download() -> None:
        url = fake_upstream.generated_files[0].url
        headers = {"x-goog-api-key": GEMINI_KEY}
        async with http.stream("GET", url, headers=headers) as response:
            async for chunk in response.aiter_raw():
                received.extend(chunk)

    fake_upstream.inject(route, DropConnection(after_bytes))

    with pytest.raises(httpx.TransportError):
        await download()

    assert len(received) == (after_bytes or 0)


# --------------------------------------------------------------------------- scripting


@pytest.mark.parametrize(
    ("route", "fault"),
    [
        ("gemini.nope", HttpError(500)),
        ("gemini.operation", PromptBlocked()),
        ("replicate.create", VeoFiltered()),
        ("gemini.generate_content", DropConnection(after_bytes=10)),
    ],
    ids=["unknown-route", "text-fault-on-operation", "veo-fault-on-replicate", "partial-json"],
)
def test_inject_refuses_a_fault_the_route_cannot_produce(
    fake_upstream: FakeUpstream, route: Route, fault: Any
) -> None:
    with pytest.raises(ValueError, match="route"):
        fake_upstream.inject(route, fault)


async def test_reset_forgets_faults_requests_and_knobs(
    gemini: genai.Client, fake_upstream: FakeUpstream
) -> None:
    await _scenes(gemini, "A cat")
    fake_upstream.inject("gemini.generate_content", PromptBlocked(), times=3)
    fake_upstream.latency_seconds = 9
    fake_upstream.clip_bytes = 2048

    fake_upstream.reset()

    assert fake_upstream.requests == []
    assert (fake_upstream.latency_seconds, fake_upstream.clip_bytes) == (0, DEFAULT_CLIP_BYTES)
    assert len(await _scenes(gemini, "A cat")) == 4


def test_runs_as_a_process_and_prints_where_it_listens(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "backend.testing.fake_upstream", "--port", "0"]
    command += ["--latency-seconds", "0", "--clip-bytes", "4096", "--cert-dir", str(tmp_path)]
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            ready = json.loads(process.stdout.readline())
            trust = ssl.create_default_context(cafile=ready["ca_cert_path"])
            answer = httpx.post(
                f"{ready['base_url']}/v1/models/google/veo-3.1/predictions",
                json={"input": {"prompt": "A cat"}},
                headers={"Authorization": "Bearer token", "Prefer": "wait"},
                verify=trust,
            )
            clip = httpx.get(answer.json()["output"], verify=trust)
        finally:
            process.terminate()
    assert Path(ready["ca_cert_path"]).parent == tmp_path
    assert answer.status_code == 201
    assert len(clip.content) == 4096
    assert process.returncode == 0
