"""Reliability: idempotent POSTs, no second paid job, results kept when the client leaves,
crash safety and graceful shutdown. Faults come from the fake upstream or real signals."""

import asyncio
import json
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.mv.errors import BackendError
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.gemini.errors import GEMINI_ERRORS
from backend.mv.providers.retries import call_with_retries
from backend.testing import fake_upstream as fake
from backend.testing.apps import (
    TEST_GEMINI_KEY,
    live_settings,
    make_settings,
    serve_app,
    service_gemini_client,
)
from backend.testing.fake_upstream import FakeUpstream
from backend.testing.server_process import (
    mock_server_env,
    running_server,
    send_and_hang_up,
    wait_for,
)

VIDEO = "/api/mv/generate_video"
SCENES = "/api/mv/create_scenes"
CLIP_REQUEST = {"prompt": "A robot dances in the rain", "duration": 4}
HTML_LABELLED_JSON = fake.HttpError(
    503, b"<html><body>upstream busy</body></html>", {"content-type": "application/json"}
)
"""A proxy's error page in front of the provider: the SDK cannot parse it."""


@pytest.fixture
async def mock_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(make_settings(tmp_path, mv_mock_mode=True)) as (_, client):
        yield client


@pytest.fixture
async def live_client(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_upstream_max_attempts=3)
    async with serve_app(settings) as (_, client):
        yield client


def stored_clips(output_dir: Path) -> list[Path]:
    return sorted((output_dir / "videos").glob("*.mp4"))


# ---- Idempotency-Key


async def test_repeated_key_replays_the_first_answer(
    mock_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    headers = {"Idempotency-Key": "scene-1-take-1"}
    first = await mock_client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    second = await mock_client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert len(stored_clips(tmp_path)) == 1


async def test_same_key_with_another_body_is_a_conflict(mock_client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "k-409"}
    assert (await mock_client.post(VIDEO, json=CLIP_REQUEST, headers=headers)).status_code == 200
    other = await mock_client.post(VIDEO, json={**CLIP_REQUEST, "duration": 6}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error_code"] == "CONFLICT"


async def test_keys_are_scoped_per_endpoint(mock_client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    video = await mock_client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    scenes = await mock_client.post(
        SCENES, json={"idea": "x", "character_description": "y"}, headers=headers
    )
    assert video.status_code == scenes.status_code == 200


async def test_a_repeat_during_the_first_request_waits_for_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_mock_delay_seconds=0.5)
    headers = {"Idempotency-Key": "in-flight"}
    async with serve_app(settings) as (_, client):
        first, second = await asyncio.gather(
            client.post(VIDEO, json=CLIP_REQUEST, headers=headers),
            client.post(VIDEO, json=CLIP_REQUEST, headers=headers),
        )
    assert first.json()["video_id"] == second.json()["video_id"]
    assert len(stored_clips(tmp_path)) == 1


async def test_keys_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True)
    headers = {"Idempotency-Key": "survives"}
    async with serve_app(settings) as (_, client):
        first = await client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    async with serve_app(settings) as (_, client):
        again = await client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    assert again.json() == first.json()
    assert len(stored_clips(tmp_path)) == 1


async def test_a_failed_request_stores_nothing_so_the_key_can_retry(
    live_client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("replicate.create", fake.PredictionFailed())
    headers = {"Idempotency-Key": "retry-me"}
    failed = await live_client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    assert failed.status_code == 502
    retried = await live_client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    assert retried.status_code == 200, retried.text


@pytest.mark.parametrize("key", [b"", b"x" * 256, "naïve-key".encode()])
async def test_malformed_key_is_a_400(mock_client: httpx.AsyncClient, key: bytes) -> None:
    response = await mock_client.post(VIDEO, json=CLIP_REQUEST, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.json()["error_code"] == "VALIDATION_ERROR"


# ---- retries never pay twice


@pytest.mark.parametrize(
    ("backend", "create_route", "fault"),
    [
        ("replicate", "replicate.create", fake.DropConnection()),
        ("gemini", "gemini.predict_long_running", fake.DropConnection()),
        ("gemini", "gemini.predict_long_running", HTML_LABELLED_JSON),
    ],
    ids=["replicate-dropped", "gemini-dropped", "gemini-unreadable-answer"],
)
async def test_create_that_may_have_started_a_job_is_not_retried(
    live_client: httpx.AsyncClient,
    fake_upstream: FakeUpstream,
    backend: str,
    create_route: str,
    fault: fake.Fault,
) -> None:
    fake_upstream.inject(create_route, fault)
    response = await live_client.post(VIDEO, json={**CLIP_REQUEST, "backend": backend})
    assert response.status_code == 502
    assert response.json()["error_code"] == "BACKEND_ERROR"
    assert len(fake_upstream.requests_for(create_route)) == 1


async def test_gemini_create_that_never_reached_the_provider_is_retried(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refusing_url = f"https://127.0.0.1:{closed.getsockname()[1]}"
    settings = make_settings(
        tmp_path, gemini_api_key=TEST_GEMINI_KEY, google_gemini_base_url=refusing_url
    )
    attempts = 0
    async with service_gemini_client(settings) as gemini:

        async def create() -> object:
            nonlocal attempts
            attempts += 1
            return await gemini.aio.models.generate_content(model="gemini-2.5-flash", contents="x")

        with pytest.raises(BackendError, match="ClientConnectorError"):
            await call_with_retries(
                create,
                errors=GEMINI_ERRORS,
                backend="gemini",
                max_attempts=2,
                deadline=Deadline(30),
            )
    assert attempts == 2


async def test_rate_limited_create_is_retried_after_retry_after(
    live_client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("replicate.create", fake.replicate_rate_limited(retry_after_seconds=1))
    started = time.monotonic()
    response = await live_client.post(VIDEO, json=CLIP_REQUEST)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started >= 1.0
    assert len(fake_upstream.requests_for("replicate.create")) == 2


async def test_permanently_failing_upstream_gives_up_after_the_attempt_budget(
    live_client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("replicate.create", fake.replicate_server_error(503), times=10)
    response = await live_client.post(VIDEO, json=CLIP_REQUEST)
    assert response.status_code == 502
    assert len(fake_upstream.requests_for("replicate.create")) == 3


@pytest.mark.parametrize(
    "fault", [fake.google_server_error(503), HTML_LABELLED_JSON], ids=["503", "html-page"]
)
async def test_polling_survives_transient_failures(
    live_client: httpx.AsyncClient, fake_upstream: FakeUpstream, fault: fake.Fault
) -> None:
    fake_upstream.latency_seconds = 0.5
    fake_upstream.inject("gemini.operation", fault, times=2)
    response = await live_client.post(VIDEO, json={**CLIP_REQUEST, "backend": "gemini"})
    assert response.status_code == 200, response.text
    assert len(fake_upstream.requests_for("gemini.predict_long_running")) == 1


# ---- real processes: disconnects, SIGKILL, SIGTERM


async def test_client_disconnect_keeps_the_paid_result(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    headers = {"Idempotency-Key": "left-early"}
    with running_server(mock_server_env(outputs), tmp_path / "server.log") as (base_url, _):
        await asyncio.to_thread(send_and_hang_up, base_url, VIDEO, CLIP_REQUEST, headers)
        sidecars = lambda: list((outputs / "videos").glob("*.json"))  # noqa: E731
        await wait_for(lambda: bool(sidecars()), within=15)
        sidecar = json.loads(sidecars()[0].read_text())
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            again = await client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    assert again.status_code == 200
    assert again.json()["video_id"] == sidecar["video_id"]
    assert len(sidecars()) == 1


async def test_sigterm_lets_a_running_generation_finish(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    env = mock_server_env(outputs, MV_SHUTDOWN_GRACE_SECONDS="15", MV_DEBUG_MODE="true")
    log = tmp_path / "server.log"
    with running_server(env, log) as (base_url, process):
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            pending = asyncio.create_task(client.post(VIDEO, json=CLIP_REQUEST))
            await wait_for(lambda: "request_args endpoint=generate_video" in log.read_text(), 10)
            process.send_signal(signal.SIGTERM)
            response = await pending
        assert process.wait(timeout=15) in {0, -signal.SIGTERM}
    assert response.status_code == 200, response.text
    assert Path(response.json()["video_path"]).is_file()


async def test_shutdown_waits_for_the_cancel_of_a_timed_out_prediction(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("replicate.create", fake.SlowGeneration(60))
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_generation_timeout_seconds=1)
    async with serve_app(settings) as (_, client):
        response = await client.post(VIDEO, json=CLIP_REQUEST)
    assert response.status_code == 504
    assert len(fake_upstream.requests_for("replicate.cancel")) == 1


async def test_a_refused_output_download_is_a_backend_error(
    live_client: httpx.AsyncClient, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("replicate.download", fake.HttpError(403, {"detail": "expired"}))
    response = await live_client.post(VIDEO, json=CLIP_REQUEST)
    assert response.status_code == 502
    assert response.json()["error_code"] == "BACKEND_ERROR"
    assert not list(tmp_path.glob("videos/*"))


@pytest.mark.parametrize(
    "fault", [fake.replicate_server_error(503), fake.DropConnection(after_bytes=4096)]
)
async def test_a_failed_download_of_a_paid_clip_is_retried(
    live_client: httpx.AsyncClient, fake_upstream: FakeUpstream, fault: fake.Fault
) -> None:
    fake_upstream.inject("replicate.download", fault)
    response = await live_client.post(VIDEO, json=CLIP_REQUEST)
    assert response.status_code == 200, response.text
    assert len(fake_upstream.requests_for("replicate.create")) == 1
    assert len(fake_upstream.requests_for("replicate.download")) == 2


async def test_a_rejected_key_while_polling_ends_the_request_at_once(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.latency_seconds = 5
    fake_upstream.inject("gemini.operation", fake.google_api_key_invalid())
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_generation_timeout_seconds=30)
    async with serve_app(settings) as (_, client):
        started = time.monotonic()
        response = await client.post(VIDEO, json={**CLIP_REQUEST, "backend": "gemini"})
    assert response.status_code == 503
    assert time.monotonic() - started < 10, "polling went on towards the 30 s deadline"


async def test_shutdown_leaves_an_abandoned_keyed_job_to_resume_not_cancelled(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.latency_seconds = 3
    settings = live_settings(
        tmp_path, fake_upstream.base_url, mv_poll_interval_seconds=0.05, mv_shutdown_grace_seconds=0
    )
    headers = {"Idempotency-Key": "abandoned"}
    async with serve_app(settings) as (_, client):
        abandoned = asyncio.create_task(client.post(VIDEO, json=CLIP_REQUEST, headers=headers))
        await wait_for(lambda: bool(fake_upstream.requests_for("replicate.get")), within=10)
        abandoned.cancel()
    assert fake_upstream.requests_for("replicate.cancel") == []
    async with serve_app(settings) as (_, client):
        again = await client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    assert again.status_code == 200, again.text
    assert len(fake_upstream.requests_for("replicate.create")) == 1


async def test_two_callers_using_the_same_key_do_not_share_answers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_api_keys="alice-key,bob-key")
    async with serve_app(settings) as (_, client):
        alice = await client.post(
            VIDEO, json=CLIP_REQUEST, headers={"Idempotency-Key": "1", "X-API-Key": "alice-key"}
        )
        bob = await client.post(
            VIDEO, json=CLIP_REQUEST, headers={"Idempotency-Key": "1", "X-API-Key": "bob-key"}
        )
    assert alice.status_code == bob.status_code == 200
    assert alice.json()["video_id"] != bob.json()["video_id"]


async def test_jobs_past_their_retention_are_deleted_with_their_keys(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_job_retention_hours=0.5 / 3600)
    headers = {"Idempotency-Key": "old"}
    async with serve_app(settings) as (_, client):
        first = await client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    await asyncio.sleep(0.6)
    async with serve_app(settings) as (_, client):
        await asyncio.sleep(0.2)
        gone = await client.get(f"/api/mv/jobs/{first.headers['X-Job-ID']}")
        again = await client.post(VIDEO, json=CLIP_REQUEST, headers=headers)
    assert gone.status_code == 404
    assert again.headers["X-Job-ID"] != first.headers["X-Job-ID"]
    assert again.json()["video_id"] != first.json()["video_id"]
    assert Path(first.json()["video_path"]).is_file(), "artifacts outlive their jobs"
