"""generate_character_reference end to end: the real replicate SDK against the fake upstream."""

import asyncio
import base64
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from backend.mv.configuration import CONFIG_DIR, ConfigError, load_configs
from backend.testing import fake_upstream as fake
from backend.testing.apps import TEST_REPLICATE_TOKEN, live_settings, make_settings, serve_app
from backend.testing.contract import ERROR_KEYS
from backend.testing.fake_upstream import FakeUpstream, RecordedRequest

IMAGES = "/api/mv/generate_character_reference"
GET_IMAGE = "/api/mv/get_character_reference/"
DESCRIPTION = "Silver metallic humanoid robot with a red shield"
REQUEST = {"character_description": DESCRIPTION}
TEMPLATE_START = "A full-body character reference image of "
TEMPLATE_END = "front-facing view."
FILE_NAME = re.compile(r"character_ref_(\d{8}_\d{6})_([0-9a-f]{8})\.(png|jpg)")
POLL_SECONDS = 0.02
PROMPTS = "image_prompts.yaml"
PARAMS = "image_params.yaml"
TEMPLATE_SLOT = "of {character_description}."
CHOICES = {
    "aspect_ratio": "16:9",
    "safety_filter_level": "block_only_high",
    "output_format": "jpg",
}


@pytest.fixture
async def client(fake_upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = live_settings(
        tmp_path,
        fake_upstream.base_url,
        mv_upstream_max_attempts=2,
        mv_generation_timeout_seconds=10,
    )
    async with serve_app(settings) as (_, client):
        yield client


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, target)
    return target


def only_create(fake_upstream: FakeUpstream) -> RecordedRequest:
    [create] = fake_upstream.requests_for("replicate.create")
    return create


def sent_input(fake_upstream: FakeUpstream) -> dict[str, Any]:
    return only_create(fake_upstream).json["input"]


def served_bytes(fake_upstream: FakeUpstream) -> bytes:
    [generated] = fake_upstream.generated_files
    return fake_upstream.file_content(generated.file_id)


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


async def wait_for_requests(
    fake_upstream: FakeUpstream, route: str, seconds: float = 3.0
) -> list[RecordedRequest]:
    """Requests made by background work (e.g. a cancel) after the response was sent."""
    for _ in range(int(seconds / POLL_SECONDS)):
        if fake_upstream.requests_for(route):
            break
        await asyncio.sleep(POLL_SECONDS)
    return fake_upstream.requests_for(route)


async def generate(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post(IMAGES, json={**REQUEST, **changes})
    assert response.status_code == 200, response.text
    assert TEST_REPLICATE_TOKEN not in response.text
    return response.json()


# ---- request validation, before any money is spent


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("aspect_ratio", "2:1"),
        ("aspect_ratio", "1:1 "),
        ("aspect_ratio", ""),
        ("output_format", "jpeg"),
        ("output_format", "PNG"),
        ("output_format", "webp"),
        ("safety_filter_level", "block_none"),
        ("person_generation", "allow_everyone"),
    ],
)
async def test_choice_outside_its_allowed_list_is_a_400_before_any_call(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, field: str, value: str
) -> None:
    response = await client.post(IMAGES, json={**REQUEST, field: value})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in body["details"]] == [field]
    assert fake_upstream.requests == []


async def test_every_bad_choice_is_reported_at_once(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    bad = {
        "aspect_ratio": "2:1",
        "output_format": "gif",
        "safety_filter_level": "off",
        "person_generation": "everyone",
    }
    response = await client.post(IMAGES, json={**REQUEST, **bad})
    assert response.status_code == 400
    assert {detail["field"] for detail in response.json()["details"]} == set(bad)
    assert fake_upstream.requests == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "character_description"),
        ({"character_description": ""}, "character_description"),
        ({"character_description": " \n\t "}, "character_description"),
        ({"character_description": "x" * 2001}, "character_description"),
        ({"character_description": "null \x00 byte"}, "character_description"),
        ({"character_description": 42}, "character_description"),
        ({**REQUEST, "negative_prompt": "   "}, "negative_prompt"),
        ({**REQUEST, "negative_prompt": "n" * 1001}, "negative_prompt"),
        ({**REQUEST, "seed": -1}, "seed"),
        ({**REQUEST, "seed": 2**31}, "seed"),
        ({**REQUEST, "seed": "random"}, "seed"),
        ({**REQUEST, "aspect_ratio": 1}, "aspect_ratio"),
    ],
)
async def test_invalid_field_is_a_400_naming_it_before_any_call(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, body: dict, field: str
) -> None:
    response = await client.post(IMAGES, json=body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert set(answer) == ERROR_KEYS
    assert answer["error_code"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in answer["details"]] == [field]
    assert fake_upstream.requests == []


async def test_malformed_json_is_a_400_before_any_call(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post(
        IMAGES, content=b'{"character_description": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "VALIDATION_ERROR"
    assert fake_upstream.requests == []


@pytest.mark.parametrize(
    "changes",
    [{"seed": 0}, {"seed": 2**31 - 1}, {"character_description": "d" * 2000}],
)
async def test_values_on_the_bounds_are_accepted(client: httpx.AsyncClient, changes: dict) -> None:
    await generate(client, **changes)


# ---- configs


def test_shipped_image_configs_hold_the_documented_model_defaults_and_lists() -> None:
    params = load_configs().image_params
    assert params.model == "google/imagen-4"
    assert (
        params.aspect_ratio,
        params.safety_filter_level,
        params.person_generation,
        params.output_format,
    ) == ("1:1", "block_medium_and_above", "allow_adult", "png")
    assert params.allowed.aspect_ratio == ["1:1", "9:16", "16:9", "3:4", "4:3"]
    assert params.allowed.output_format == ["png", "jpg"]
    assert params.allowed.safety_filter_level == [
        "block_low_and_above",
        "block_medium_and_above",
        "block_only_high",
    ]
    assert params.allowed.person_generation == ["dont_allow", "allow_adult", "allow_all"]


def test_shipped_image_prompt_wraps_the_description() -> None:
    template = load_configs().image_prompts.character_reference_prompt
    prompt = template.format(character_description="DESCRIPTION")
    assert prompt.startswith(TEMPLATE_START + "DESCRIPTION")
    assert prompt.endswith(TEMPLATE_END)


@pytest.mark.parametrize(
    ("file_name", "old", "new", "problem"),
    [
        (PROMPTS, TEMPLATE_SLOT, "of someone.", "character_description"),
        (PROMPTS, TEMPLATE_SLOT, "of {character_description} {mood}.", "mood"),
        (PARAMS, "person_generation: allow_adult", "person_generation: all", "person"),
        (PARAMS, "output_format: png", "output_format: [png]", "output_format"),
    ],
    ids=["no-placeholder", "unknown-placeholder", "default-not-allowed", "wrong-type"],
)
def test_broken_image_config_names_the_file_and_problem(
    config_copy: Path, file_name: str, old: str, new: str, problem: str
) -> None:
    replace_in(config_copy / file_name, old, new)
    with pytest.raises(ConfigError, match=problem) as raised:
        load_configs(config_copy)
    assert file_name in str(raised.value)


async def test_allowed_lists_are_read_from_the_config_file(
    fake_upstream: FakeUpstream, tmp_path: Path, config_copy: Path
) -> None:
    replace_in(
        config_copy / "image_params.yaml",
        'aspect_ratio: ["1:1", "9:16", "16:9", "3:4", "4:3"]',
        'aspect_ratio: ["1:1", "21:9"]',
    )
    settings = live_settings(tmp_path, fake_upstream.base_url)
    async with serve_app(settings, config_dir=config_copy) as (_, client):
        refused = await client.post(IMAGES, json={**REQUEST, "aspect_ratio": "16:9"})
        accepted = await client.post(IMAGES, json={**REQUEST, "aspect_ratio": "21:9"})
    assert refused.status_code == 400
    assert accepted.status_code == 200, accepted.text
    assert sent_input(fake_upstream)["aspect_ratio"] == "21:9"


async def test_defaults_model_and_template_are_read_from_the_config_files(
    fake_upstream: FakeUpstream, tmp_path: Path, config_copy: Path
) -> None:
    params = config_copy / "image_params.yaml"
    replace_in(params, "model: google/imagen-4", "model: google/imagen-4-fast")
    replace_in(params, "output_format: png", "output_format: jpg")
    replace_in(config_copy / "image_prompts.yaml", "A full-body", "A studio portrait sheet. A")
    async with serve_app(
        live_settings(tmp_path, fake_upstream.base_url), config_dir=config_copy
    ) as (
        _,
        client,
    ):
        body = await generate(client)
    create = only_create(fake_upstream)
    assert create.path == "/v1/models/google/imagen-4-fast/predictions"
    assert create.json["input"]["output_format"] == "jpg"
    assert create.json["input"]["prompt"].startswith("A studio portrait sheet. A character")
    assert body["output_file"].endswith(".jpg")
    assert body["metadata"]["model_used"] == "google/imagen-4-fast"
    assert "output_format" in body["metadata"]["defaults_applied"]


# ---- the provider key


async def test_missing_token_is_a_503_before_any_call(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, replicate_base_url=fake_upstream.base_url)
    async with serve_app(settings) as (_, client):
        response = await client.post(IMAGES, json=REQUEST)
    assert response.status_code == 503
    body = response.json()
    assert body["error_code"] == "BACKEND_NOT_CONFIGURED"
    assert body["backend_used"] == "replicate"
    assert "REPLICATE_API_TOKEN" in body["message"]
    assert fake_upstream.requests == []
    assert not list((tmp_path / "character_reference").glob("*.json"))


async def test_token_from_settings_is_sent_and_never_put_in_the_environment(
    fake_upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    async with serve_app(live_settings(tmp_path, fake_upstream.base_url)) as (_, client):
        await generate(client)
        assert "REPLICATE_API_TOKEN" not in os.environ
    assert only_create(fake_upstream).headers["authorization"] == f"Bearer {TEST_REPLICATE_TOKEN}"


# ---- a successful generation


async def test_stored_image_is_exactly_what_the_provider_served(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    body = await generate(client)
    assert Path(body["output_file"]).read_bytes() == served_bytes(fake_upstream)


async def test_base64_in_the_answer_is_the_stored_image(client: httpx.AsyncClient) -> None:
    body = await generate(client)
    decoded = base64.b64decode(body["image_base64"], validate=True)
    assert decoded == Path(body["output_file"]).read_bytes()
    with Image.open(io.BytesIO(decoded)) as image:
        image.verify()


@pytest.mark.parametrize(
    ("output_format", "pillow_format", "content_type"),
    [("png", "PNG", "image/png"), ("jpg", "JPEG", "image/jpeg")],
)
async def test_output_format_decides_the_file_and_its_content_type(
    client: httpx.AsyncClient, output_format: str, pillow_format: str, content_type: str
) -> None:
    body = await generate(client, output_format=output_format)
    stored = Path(body["output_file"])
    assert stored.suffix == f".{output_format}"
    with Image.open(stored) as image:
        assert image.format == pillow_format
    served = await client.get(body["image_url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == content_type
    assert served.content == stored.read_bytes()


async def test_answer_names_the_image_and_how_it_was_made(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    body = await generate(client)
    image_id = body["image_id"]
    assert str(uuid.UUID(image_id)) == image_id
    assert body["image_url"] == f"{GET_IMAGE}{image_id}"
    stored = Path(body["output_file"])
    assert stored.is_absolute()
    assert stored.parent == tmp_path / "character_reference"
    metadata = body["metadata"]
    assert metadata["character_description"] == DESCRIPTION
    assert metadata["backend_used"] == "replicate"
    assert metadata["model_used"] == "google/imagen-4"
    assert metadata["processing_time_seconds"] >= 0
    created = datetime.strptime(metadata["generation_timestamp"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(created.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(seconds=30)


async def test_file_name_is_the_utc_timestamp_and_a_hex_suffix(client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    body = await generate(client)
    after = datetime.now(UTC)
    match = FILE_NAME.fullmatch(Path(body["output_file"]).name)
    assert match, body["output_file"]
    stamped = datetime.strptime(match[1], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    assert before <= stamped <= after
    assert match[3] == "png"


async def test_sidecar_beside_the_image_holds_its_metadata(client: httpx.AsyncClient) -> None:
    body = await generate(client)
    image = Path(body["output_file"])
    sidecar = json.loads((image.parent / f"{body['image_id']}.json").read_text())
    data = image.read_bytes()
    assert sidecar["image_id"] == body["image_id"]
    assert sidecar["file_name"] == image.name
    assert sidecar["content_type"] == "image/png"
    assert sidecar["size_bytes"] == len(data)
    assert sidecar["sha256"] == hashlib.sha256(data).hexdigest()
    assert sidecar["prompt"].startswith(TEMPLATE_START + DESCRIPTION)
    for name, value in body["metadata"].items():
        assert sidecar[name] == value, name


async def test_description_reaches_replicate_verbatim_inside_the_template(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    description = '  Robot {named} "Zed" — ünïcode & <tags>\nsecond line  '
    await generate(client, character_description=description)
    prompt = sent_input(fake_upstream)["prompt"]
    assert prompt.startswith(TEMPLATE_START + description)
    assert prompt.endswith(TEMPLATE_END)


async def test_requested_choices_reach_replicate_and_are_reported_as_used(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    body = await generate(client, **CHOICES)
    model_input = sent_input(fake_upstream)
    assert {name: model_input[name] for name in CHOICES} == CHOICES
    assert body["metadata"]["parameters_used"] == {
        name: value for name, value in model_input.items() if name != "prompt"
    }
    assert only_create(fake_upstream).path == "/v1/models/google/imagen-4/predictions"


async def test_unset_choices_take_the_config_defaults(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    body = await generate(client)
    assert set(body["metadata"]["defaults_applied"]) == {
        "aspect_ratio",
        "safety_filter_level",
        "output_format",
    }
    assert body["metadata"]["parameters_not_applied"] == {}
    model_input = sent_input(fake_upstream)
    assert model_input["aspect_ratio"] == "1:1"
    assert model_input["safety_filter_level"] == "block_medium_and_above"
    assert model_input["output_format"] == "png"


async def test_parameters_the_model_has_no_input_for_are_reported_and_not_sent(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    body = await generate(
        client, person_generation="allow_all", negative_prompt="blurry, extra limbs", seed=1234
    )
    not_applied = body["metadata"]["parameters_not_applied"]
    assert set(not_applied) == {"person_generation", "negative_prompt", "seed"}
    assert all("google/imagen-4" in reason for reason in not_applied.values())
    model_input = sent_input(fake_upstream)
    assert set(model_input) == {"prompt", "aspect_ratio", "safety_filter_level", "output_format"}
    assert "blurry, extra limbs" not in model_input["prompt"]
    assert not set(not_applied) & set(body["metadata"]["parameters_used"])


async def test_ten_concurrent_requests_get_distinct_ids_and_files(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.latency_seconds = 0.2
    responses = await asyncio.gather(
        *(
            client.post(IMAGES, json={"character_description": f"robot number {index}"})
            for index in range(10)
        )
    )
    assert [response.status_code for response in responses] == [200] * 10
    bodies = [response.json() for response in responses]
    assert len({body["image_id"] for body in bodies}) == 10
    assert len({body["output_file"] for body in bodies}) == 10
    stored = [Path(body["output_file"]).read_bytes() for body in bodies]
    served = [fake_upstream.file_content(item.file_id) for item in fake_upstream.generated_files]
    assert sorted(stored) == sorted(served)
    for index, body in enumerate(bodies):
        assert base64.b64decode(body["image_base64"]) == stored[index]
        assert body["metadata"]["character_description"] == f"robot number {index}"


# ---- waiting for the prediction


async def test_a_prediction_is_created_without_holding_and_polled_to_completion(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.latency_seconds = 1.3
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_generation_timeout_seconds=3)
    async with serve_app(settings) as (_, client):
        body = await generate(client)
    assert "prefer" not in only_create(fake_upstream).headers, "a held create hides its id"
    polls = fake_upstream.requests_for("replicate.get")
    assert polls
    assert {poll.path for poll in polls} == {polls[0].path}
    assert Path(body["output_file"]).read_bytes() == served_bytes(fake_upstream)


@pytest.mark.parametrize(
    "fault", [fake.replicate_server_error(500), fake.DropConnection()], ids=["500", "drop"]
)
async def test_a_failed_poll_does_not_lose_the_job(
    fake_upstream: FakeUpstream, tmp_path: Path, fault: fake.Fault
) -> None:
    fake_upstream.latency_seconds = 0.3
    fake_upstream.inject("replicate.get", fault, times=2)
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_generation_timeout_seconds=1.5)
    async with serve_app(settings) as (_, client):
        body = await generate(client)
    assert len(fake_upstream.requests_for("replicate.create")) == 1
    assert len(fake_upstream.requests_for("replicate.get")) >= 3
    assert fake_upstream.requests_for("replicate.cancel") == []
    assert Path(body["output_file"]).read_bytes() == served_bytes(fake_upstream)


@pytest.mark.parametrize(
    ("fault", "status", "error_code"),
    [
        (fake.replicate_unauthenticated(), 503, "BACKEND_NOT_CONFIGURED"),
        (fake.HttpError(404, {"title": "Not found", "status": 404}), 502, "GENERATION_FAILED"),
    ],
    ids=["401", "404"],
)
async def test_a_poll_failure_that_cannot_heal_ends_the_request_at_once(
    fake_upstream: FakeUpstream, tmp_path: Path, fault: fake.Fault, status: int, error_code: str
) -> None:
    fake_upstream.inject("replicate.create", fake.SlowGeneration(30))
    fake_upstream.inject("replicate.get", fault, times=100)
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_generation_timeout_seconds=1.9)
    async with serve_app(settings) as (_, client):
        response = await client.post(IMAGES, json=REQUEST)
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == error_code
    assert len(fake_upstream.requests_for("replicate.get")) == 1


# ---- the error table, driven from the provider


@pytest.mark.parametrize(
    ("fault", "status", "error_code"),
    [
        (fake.replicate_unauthenticated(), 503, "BACKEND_NOT_CONFIGURED"),
        (fake.PredictionFailed(), 502, "GENERATION_FAILED"),
        (fake.prediction_flagged_sensitive(), 422, "CONTENT_POLICY_VIOLATION"),
        (fake.replicate_rate_limited(1), 429, "RATE_LIMIT_EXCEEDED"),
        (fake.replicate_server_error(500), 502, "BACKEND_ERROR"),
        (fake.replicate_server_error(503), 502, "BACKEND_ERROR"),
        (fake.DropConnection(), 502, "BACKEND_ERROR"),
    ],
    ids=["401", "failed", "flagged", "429", "500", "503", "drop"],
)
async def test_provider_failures_map_to_the_error_table(
    client: httpx.AsyncClient,
    fake_upstream: FakeUpstream,
    tmp_path: Path,
    fault: fake.Fault,
    status: int,
    error_code: str,
) -> None:
    fake_upstream.inject("replicate.create", fault, times=2)
    response = await client.post(IMAGES, json=REQUEST)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["error_code"] == error_code
    assert body["backend_used"] == "replicate"
    assert body["request_id"] == response.headers["x-request-id"]
    assert TEST_REPLICATE_TOKEN not in response.text
    assert "Traceback" not in response.text
    assert files_under(tmp_path / "character_reference") == []


async def test_rate_limit_answer_carries_the_providers_retry_after(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("replicate.create", fake.replicate_rate_limited(7))
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_upstream_max_attempts=1)
    async with serve_app(settings) as (_, client):
        response = await client.post(IMAGES, json=REQUEST)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


async def test_rate_limit_without_retry_after_still_answers_one(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    throttled = fake.HttpError(429, {"title": "Request was throttled.", "status": 429})
    fake_upstream.inject("replicate.create", throttled)
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_upstream_max_attempts=1)
    async with serve_app(settings) as (_, client):
        response = await client.post(IMAGES, json=REQUEST)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


async def test_retry_after_beyond_the_deadline_is_not_waited_out(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("replicate.create", fake.replicate_rate_limited(7), times=4)
    settings = live_settings(
        tmp_path,
        fake_upstream.base_url,
        mv_upstream_max_attempts=4,
        mv_generation_timeout_seconds=3,
    )
    started = time.monotonic()
    async with serve_app(settings) as (_, client):
        response = await client.post(IMAGES, json=REQUEST)
    assert response.status_code == 429
    assert time.monotonic() - started < 6, "the 7 s Retry-After was waited out"
    assert len(fake_upstream.requests_for("replicate.create")) == 1


async def test_a_transient_create_failure_is_retried_and_succeeds(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.inject("replicate.create", fake.replicate_server_error(503))
    body = await generate(client)
    assert len(fake_upstream.requests_for("replicate.create")) == 2
    assert Path(body["output_file"]).read_bytes() == served_bytes(fake_upstream)


@pytest.mark.parametrize(
    "fault",
    [fake.DropConnection(), fake.replicate_unauthenticated(), fake.PredictionFailed()],
    ids=["drop", "401", "failed"],
)
async def test_create_is_not_retried_when_a_job_may_exist_or_the_answer_is_final(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, fault: fake.Fault
) -> None:
    fake_upstream.inject("replicate.create", fault, times=2)
    response = await client.post(IMAGES, json=REQUEST)
    assert response.status_code >= 500
    assert len(fake_upstream.requests_for("replicate.create")) == 1


async def test_slow_prediction_is_a_504_and_is_cancelled_upstream(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("replicate.create", fake.SlowGeneration(30))
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_generation_timeout_seconds=1)
    started = time.monotonic()
    async with serve_app(settings) as (_, client):
        response = await client.post(IMAGES, json=REQUEST)
        elapsed = time.monotonic() - started
        cancels = await wait_for_requests(fake_upstream, "replicate.cancel")
    assert response.status_code == 504
    body = response.json()
    assert body["error_code"] == "GENERATION_TIMEOUT"
    assert body["backend_used"] == "replicate"
    assert elapsed < 5
    prediction_path = fake_upstream.requests_for("replicate.get")[0].path
    assert [cancel.path for cancel in cancels] == [f"{prediction_path}/cancel"]
    assert files_under(tmp_path / "character_reference") == []


async def test_a_download_interrupted_every_time_is_a_502_and_leaves_no_file(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("replicate.download", fake.DropConnection(after_bytes=20), times=2)
    response = await client.post(IMAGES, json=REQUEST)
    assert response.status_code == 502
    assert response.json()["error_code"] == "BACKEND_ERROR"
    assert len(fake_upstream.requests_for("replicate.download")) == 2
    assert files_under(tmp_path / "character_reference") == []


# ---- fetching a stored image


@pytest.mark.parametrize(
    "image_id",
    [
        str(uuid.uuid4()),
        "not-a-uuid",
        "%2E%2E",
        "..%2F..%2Fetc%2Fpasswd",
        "..%5C..%5Cwindows",
        f"{{{uuid.uuid4()}}}",
        f"{uuid.uuid4()}.json",
        "x" * 300,
    ],
    ids=["unknown", "malformed", "dotdot", "traversal", "backslash", "braced", "sidecar", "long"],
)
async def test_unknown_or_malformed_id_is_a_404_in_the_error_shape(
    client: httpx.AsyncClient, image_id: str
) -> None:
    response = await client.get(f"{GET_IMAGE}{image_id}")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["error_code"] == "NOT_FOUND"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_an_image_whose_file_is_gone_is_a_404(client: httpx.AsyncClient) -> None:
    body = await generate(client)
    Path(body["output_file"]).unlink()
    response = await client.get(body["image_url"])
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


# ---- debug mode


async def test_debug_mode_logs_the_request_without_secrets_or_image_bytes(
    fake_upstream: FakeUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="backend")
    settings = live_settings(tmp_path, fake_upstream.base_url, mv_debug_mode=True)
    async with serve_app(settings) as (_, client):
        body = await generate(client)
    debug_lines = [
        record.getMessage()
        for record in caplog.records
        if record.name == "backend.mv.debug"
        and "generate_character_reference" in record.getMessage()
    ]
    for event in ("request_args", "defaults_applied", "prompt", "provider_response"):
        assert any(line.startswith(event) for line in debug_lines), event
    assert any(DESCRIPTION in line for line in debug_lines)
    everything = "\n".join(record.getMessage() for record in caplog.records)
    assert TEST_REPLICATE_TOKEN not in everything
    assert body["image_base64"][:64] not in everything
