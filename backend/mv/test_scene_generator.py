"""create_scenes end to end: the real google-genai SDK against the fake Gemini upstream."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from backend.mv.scene_generator import CreateScenesRequest
from backend.testing import fake_upstream as fake
from backend.testing.apps import TEST_GEMINI_KEY, live_settings, make_settings, serve_app
from backend.testing.fake_upstream import FakeUpstream

SCENES = "/api/mv/create_scenes"
REQUEST = {
    "idea": "A robot discovers music in an abandoned city",
    "character_description": "Silver humanoid robot with a red shield",
}


@pytest.fixture
async def client(fake_upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_upstream_max_attempts=2)
    async with serve_app(settings) as (_, client):
        yield client


def sent_prompts(fake_upstream: FakeUpstream) -> list[str]:
    return [
        request.json["contents"][0]["parts"][0]["text"]
        for request in fake_upstream.requests_for("gemini.generate_content")
    ]


# ---- request model


@pytest.mark.parametrize(
    "changes",
    [
        {"idea": "   "},
        {"character_description": ""},
        {"idea": "x" * 2001},
        {"idea": "null byte \x00 inside"},
        {"number_of_scenes": 0},
        {"number_of_scenes": True},
        {"number_of_scenes": "4"},
        {"output_dir": "/etc"},
        {"output_dir": "../escape"},
        {"output_dir": "a/../../b"},
        {"output_dir": "a/b/c/d/e"},
        {"output_dir": "name with spaces"},
    ],
)
def test_request_model_refuses_bad_values(changes: dict) -> None:
    with pytest.raises(ValidationError):
        CreateScenesRequest(**{**REQUEST, **changes})


def test_request_text_is_kept_verbatim() -> None:
    request = CreateScenesRequest(idea="  spaced idea\n", character_description="robot")
    assert request.idea == "  spaced idea\n"


# ---- success


async def test_scenes_come_back_and_defaults_are_reported(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post(SCENES, json=REQUEST)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["scenes"]) == 4
    assert all(scene["description"] for scene in body["scenes"])
    metadata = body["metadata"]
    assert metadata["number_of_scenes"] == 4
    assert metadata["model"] == "gemini-2.5-pro"
    assert metadata["backend_used"] == "gemini"
    assert set(metadata["defaults_applied"]) == {
        "character_characteristics",
        "number_of_scenes",
        "video_type",
        "video_characteristics",
        "camera_angle",
    }
    request = fake_upstream.requests_for("gemini.generate_content")[0]
    assert request.path.endswith("/models/gemini-2.5-pro:generateContent")
    assert request.headers["x-goog-api-key"] == TEST_GEMINI_KEY
    generation_config = request.json["generationConfig"]
    assert generation_config["responseMimeType"] == "application/json"
    assert "scenes" in generation_config["responseJsonSchema"]["properties"]


async def test_request_fields_reach_the_prompt_verbatim(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    request = {
        **REQUEST,
        "idea": "Braces {stay} literal & <tags> too",
        "camera_angle": "dutch angle only",
        "number_of_scenes": 2,
    }
    response = await client.post(SCENES, json=request)
    assert response.status_code == 200, response.text
    [prompt] = sent_prompts(fake_upstream)
    assert request["idea"] in prompt
    assert REQUEST["character_description"] in prompt
    assert "dutch angle only" in prompt
    assert "exactly 2 scenes" in prompt
    assert "camera_angle" not in response.json()["metadata"]["defaults_applied"]


async def test_files_hold_what_the_response_says(client: httpx.AsyncClient) -> None:
    body = (await client.post(SCENES, json={**REQUEST, "number_of_scenes": 3})).json()
    json_path = Path(body["output_files"]["json"])
    markdown_path = Path(body["output_files"]["markdown"])
    assert json_path.is_absolute()
    assert json_path.parent.name == body["metadata"]["scene_set_id"]
    assert json.loads(json_path.read_text()) == body
    markdown = markdown_path.read_text()
    for scene in body["scenes"]:
        assert scene["description"] in markdown


async def test_named_output_dir_is_used_then_refused_when_taken(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    first = await client.post(SCENES, json={**REQUEST, "output_dir": "robot/take-1"})
    assert first.status_code == 200, first.text
    expected = tmp_path / "create_scenes" / "robot" / "take-1" / "scenes.json"
    assert Path(first.json()["output_files"]["json"]) == expected
    original = expected.read_bytes()
    second = await client.post(SCENES, json={**REQUEST, "output_dir": "robot/take-1"})
    assert second.status_code == 409
    assert second.json()["error_code"] == "CONFLICT"
    assert expected.read_bytes() == original


async def test_number_of_scenes_above_the_configured_maximum_is_a_400(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post(SCENES, json={**REQUEST, "number_of_scenes": 13})
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "number_of_scenes"
    assert fake_upstream.requests_for("gemini.generate_content") == []


async def test_twenty_concurrent_requests_give_twenty_intact_scene_sets(
    client: httpx.AsyncClient,
) -> None:
    requests = [{**REQUEST, "idea": f"idea number {index}"} for index in range(20)]
    responses = await asyncio.gather(*(client.post(SCENES, json=body) for body in requests))
    assert [response.status_code for response in responses] == [200] * 20
    folders = {Path(response.json()["output_files"]["json"]).parent for response in responses}
    assert len(folders) == 20
    for request, response in zip(requests, responses, strict=True):
        stored = json.loads(Path(response.json()["output_files"]["json"]).read_text())
        assert stored["metadata"]["idea"] == request["idea"]


# ---- model answers that are unusable


@pytest.mark.parametrize(
    "fault",
    [fake.RawText("{not json"), fake.FewerScenes(missing=1), fake.EmptyDescription(1)],
)
async def test_one_bad_answer_is_retried_once(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, fault: fake.Fault
) -> None:
    fake_upstream.inject("gemini.generate_content", fault)
    response = await client.post(SCENES, json=REQUEST)
    assert response.status_code == 200, response.text
    assert len(fake_upstream.requests_for("gemini.generate_content")) == 2


async def test_two_bad_answers_are_a_generation_failure(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("gemini.generate_content", fake.FewerScenes(missing=2), times=2)
    response = await client.post(SCENES, json=REQUEST)
    assert response.status_code == 502
    assert response.json()["error_code"] == "GENERATION_FAILED"
    assert list((tmp_path / "create_scenes").iterdir()) == []


# ---- the error table, driven from the provider


@pytest.mark.parametrize(
    ("fault", "status", "error_code"),
    [
        (fake.PromptBlocked(), 422, "CONTENT_POLICY_VIOLATION"),
        (fake.CandidateBlocked(), 422, "CONTENT_POLICY_VIOLATION"),
        (fake.google_api_key_invalid(), 503, "BACKEND_NOT_CONFIGURED"),
        (
            fake.HttpError(
                403, {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}
            ),
            503,
            "BACKEND_NOT_CONFIGURED",
        ),
        (fake.google_rate_limited(), 429, "RATE_LIMIT_EXCEEDED"),
        (fake.google_server_error(500), 502, "BACKEND_ERROR"),
        (fake.google_server_error(503), 502, "BACKEND_ERROR"),
        (fake.DropConnection(), 502, "BACKEND_ERROR"),
    ],
)
async def test_provider_failures_map_to_the_error_table(
    client: httpx.AsyncClient,
    fake_upstream: FakeUpstream,
    fault: fake.Fault,
    status: int,
    error_code: str,
) -> None:
    fake_upstream.inject("gemini.generate_content", fault, times=2)
    response = await client.post(SCENES, json=REQUEST)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == error_code
    assert body["backend_used"] == "gemini"
    assert TEST_GEMINI_KEY not in response.text


async def test_rate_limit_answer_carries_the_providers_retry_after(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("gemini.generate_content", fake.google_rate_limited(1), times=2)
    response = await client.post(SCENES, json=REQUEST)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


async def test_a_transient_failure_is_retried_and_succeeds(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("gemini.generate_content", fake.google_server_error(503))
    response = await client.post(SCENES, json=REQUEST)
    assert response.status_code == 200, response.text
    assert len(fake_upstream.requests_for("gemini.generate_content")) == 2


async def test_slow_model_is_a_504(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    fake_upstream.inject("gemini.generate_content", fake.SlowGeneration(30))
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_generation_timeout_seconds=0.5)
    async with serve_app(settings) as (_, client):
        response = await client.post(SCENES, json=REQUEST)
    assert response.status_code == 504
    assert response.json()["error_code"] == "GENERATION_TIMEOUT"


async def test_missing_key_is_a_503_before_any_call(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    async with serve_app(make_settings(tmp_path)) as (_, client):
        response = await client.post(SCENES, json=REQUEST)
    assert response.status_code == 503
    assert response.json()["error_code"] == "BACKEND_NOT_CONFIGURED"
    assert "GEMINI_API_KEY" in response.json()["message"]
    assert fake_upstream.requests == []


# ---- debug mode


async def test_debug_mode_logs_arguments_defaults_configs_prompt_and_answer(
    fake_upstream: FakeUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="backend")
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_debug_mode=True)
    async with serve_app(settings) as (_, client):
        response = await client.post(SCENES, json=REQUEST)
    assert response.status_code == 200
    debug_lines = [
        record.getMessage() for record in caplog.records if record.name.endswith("debug")
    ]
    for event in (
        "configs_loaded",
        "request_args",
        "defaults_applied",
        "prompt",
        "provider_response",
    ):
        assert any(line.startswith(event) for line in debug_lines), event
    assert any(REQUEST["idea"] in line for line in debug_lines)
    assert not any(TEST_GEMINI_KEY in record.getMessage() for record in caplog.records)


async def test_debug_lines_are_off_by_default(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.post(SCENES, json=REQUEST)
    assert not [record for record in caplog.records if record.name == "backend.mv.debug"]


def test_optional_text_may_be_null() -> None:
    request = CreateScenesRequest(**REQUEST, camera_angle=None, video_type=None)
    assert request.camera_angle is None


@pytest.mark.parametrize("output_dir", ["take/scenes.json", "take/scenes.json/deeper"])
async def test_output_dir_through_an_existing_file_is_a_conflict(
    client: httpx.AsyncClient, output_dir: str
) -> None:
    first = await client.post(SCENES, json={**REQUEST, "output_dir": "take"})
    assert first.status_code == 200, first.text
    response = await client.post(SCENES, json={**REQUEST, "output_dir": output_dir})
    assert response.status_code == 409, response.text
    assert response.json()["error_code"] == "CONFLICT"
