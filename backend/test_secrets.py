"""Keys never leak: with debug logging on, neither provider key appears in any log line or
response body across the whole workflow and its error paths, and a provider that echoes a
key back does not get it into the server's log, tracebacks and chained causes included."""

import logging
from pathlib import Path

import httpx
import pytest

from backend.testing import fake_upstream as fake
from backend.testing.apps import (
    TEST_GEMINI_KEY,
    TEST_REPLICATE_TOKEN,
    live_settings,
    serve_app,
)
from backend.testing.fake_upstream import FakeUpstream
from backend.testing.server_process import live_server_env, running_server

CHARACTER = "Silver humanoid robot with a red shield"
ERROR_PATHS: list[tuple[str, fake.Fault, str, dict]] = [
    ("replicate.create", fake.replicate_unauthenticated(), "/api/mv/generate_video", {}),
    ("replicate.create", fake.replicate_rate_limited(1), "/api/mv/generate_video", {}),
    ("replicate.create", fake.PredictionFailed(), "/api/mv/generate_character_reference", {}),
    (
        "gemini.predict_long_running",
        fake.google_api_key_invalid(),
        "/api/mv/generate_video",
        {"backend": "gemini"},
    ),
    ("gemini.generate_content", fake.google_server_error(500), "/api/mv/create_scenes", {}),
    (
        "gemini.download",
        fake.HttpError(403, {"error": {"code": 403, "message": "denied"}}),
        "/api/mv/generate_video",
        {"backend": "gemini"},
    ),
]
BODIES = {
    "/api/mv/create_scenes": {"idea": "robot music", "character_description": CHARACTER},
    "/api/mv/generate_character_reference": {"character_description": CHARACTER},
    "/api/mv/generate_video": {"prompt": "robot dances", "duration": 4},
}


async def test_no_key_in_any_log_line_or_response(
    fake_upstream: FakeUpstream,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = live_settings(
        tmp_path, fake_upstream.base_url, mv_debug_mode=True, mv_upstream_max_attempts=1
    )
    answers: list[httpx.Response] = []
    async with serve_app(settings) as (_, client):
        answers.append(
            await client.post("/api/mv/create_scenes", json=BODIES["/api/mv/create_scenes"])
        )
        reference = await client.post(
            "/api/mv/generate_character_reference", json={"character_description": CHARACTER}
        )
        answers.append(reference)
        image_id = reference.json()["image_id"]
        for backend in ("replicate", "gemini"):
            clip = await client.post(
                "/api/mv/generate_video",
                json={"prompt": "robot dances", "backend": backend, "reference_image_id": image_id},
            )
            answers += [clip, await client.get(f"{clip.json()['video_url']}/info")]
        assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
        for route, fault, path, extra in ERROR_PATHS:
            fake_upstream.inject(route, fault)
            failed = await client.post(path, json={**BODIES[path], **extra})
            assert failed.status_code >= 400
            answers.append(failed)

    logged = caplog.text + capfd.readouterr().err
    assert "robot dances" in logged
    for secret in (TEST_GEMINI_KEY, TEST_REPLICATE_TOKEN):
        assert secret not in logged
        for answer in answers:
            assert secret not in answer.text
            assert all(secret not in value for value in answer.headers.values())


async def test_a_provider_echoing_our_token_does_not_leak_it(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    echo = {"title": "Server error", "detail": f"bad auth Bearer {TEST_REPLICATE_TOKEN}"}
    fake_upstream.inject("replicate.create", fake.HttpError(500, echo))
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_upstream_max_attempts=1)
    async with serve_app(settings) as (_, client):
        response = await client.post("/api/mv/generate_video", json={"prompt": "robot"})
    assert response.status_code == 502
    assert "bad auth Bearer [redacted]" in response.json()["message"]
    assert TEST_REPLICATE_TOKEN not in response.text


CLIENT_KEY = "client-key-3b9d7e5a"


def echoes(secrets: str) -> list[tuple[str, fake.Fault, str, dict]]:
    """Provider answers that quote `secrets` back: in an error body (which ends up in the
    SDK exception, the cause of our error) and in a failed prediction's own text."""
    replicate_echo = {"title": "Server error", "detail": f"bad auth {secrets}", "status": 500}
    google_echo = {"error": {"code": 500, "message": f"bad key {secrets}", "status": "INTERNAL"}}
    return [
        ("replicate.create", fake.HttpError(500, replicate_echo), "/api/mv/generate_video", {}),
        (
            "replicate.create",
            fake.PredictionFailed(f"Prediction failed: token {secrets} refused"),
            "/api/mv/generate_character_reference",
            {},
        ),
        ("gemini.generate_content", fake.HttpError(500, google_echo), "/api/mv/create_scenes", {}),
        (
            "gemini.predict_long_running",
            fake.HttpError(500, google_echo),
            "/api/mv/generate_video",
            {"backend": "gemini"},
        ),
    ]


async def test_a_provider_echoing_our_keys_never_reaches_the_server_log(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = live_server_env(
        tmp_path / "outputs",
        fake_upstream.base_url,
        MV_DEBUG_MODE="true",
        MV_UPSTREAM_MAX_ATTEMPTS="1",
        MV_API_KEYS=f"other-key,{CLIENT_KEY}",
    )
    secrets = (TEST_GEMINI_KEY, TEST_REPLICATE_TOKEN, CLIENT_KEY)
    log = tmp_path / "server.log"
    with running_server(env, log) as (base_url, _):
        async with httpx.AsyncClient(
            base_url=base_url, timeout=60, headers={"X-API-Key": CLIENT_KEY}
        ) as client:
            for route, fault, path, extra in echoes(" ".join(secrets)):
                fake_upstream.inject(route, fault)
                failed = await client.post(path, json={**BODIES[path], **extra})
                assert failed.status_code >= 500, failed.text
                assert all(secret not in failed.text for secret in secrets)

    logged = log.read_text()
    assert logged.count("Traceback (most recent call last)") >= 3, "no cause was logged"
    assert "[redacted]" in logged
    for secret in secrets:
        assert secret not in logged
