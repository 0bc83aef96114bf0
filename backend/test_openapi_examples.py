"""What `/openapi.json` tells a client: examples that work, errors as answered, real rules.

Swagger's "Try it out" sends an operation's example body as it stands; a client generator
reads the constraints. Both must match what the service does.
"""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.mv.configuration import load_configs
from backend.testing.apps import make_settings, serve_app

KNOWN_CODES = {
    400: {"VALIDATION_ERROR"},
    401: {"UNAUTHORIZED"},
    404: {"NOT_FOUND"},
    409: {"CONFLICT"},
    413: {"PAYLOAD_TOO_LARGE"},
    416: {"RANGE_NOT_SATISFIABLE"},
    422: {"CONTENT_POLICY_VIOLATION"},
    429: {"RATE_LIMIT_EXCEEDED"},
    502: {"GENERATION_FAILED", "BACKEND_ERROR"},
    503: {"BACKEND_NOT_CONFIGURED", "SERVER_BUSY"},
    504: {"GENERATION_TIMEOUT"},
    507: {"INSUFFICIENT_STORAGE"},
    500: {"INTERNAL_ERROR"},
}


@pytest.fixture
async def mock_app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    async with serve_app(make_settings(tmp_path, mv_mock_mode=True)) as (_, client):
        yield client, (await client.get("/openapi.json")).json()


NEEDS_STORED_IDS = {"/api/mv/assemble_video"}
"""Its example names clips the reader must have made first: it cannot succeed as it stands."""


def post_operations(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The POST operations with a JSON body (upload_audio takes a file, a job's cancel
    none)."""
    return [
        (path, item["post"])
        for path, item in schema["paths"].items()
        if "post" in item
        and "application/json" in item["post"].get("requestBody", {}).get("content", {})
    ]


async def test_every_post_example_succeeds_in_mock_mode_every_time(
    mock_app: tuple[httpx.AsyncClient, dict[str, Any]],
) -> None:
    client, schema = mock_app
    operations = [
        (path, op) for path, op in post_operations(schema) if path not in NEEDS_STORED_IDS
    ]
    assert len(operations) == 3
    for path, operation in operations:
        examples = operation["requestBody"]["content"]["application/json"]["examples"]
        assert examples, path
        for example in examples.values():
            for attempt in (1, 2):
                response = await client.post(path, json=example["value"])
                assert response.status_code == 200, (path, attempt, response.text)


async def test_examples_naming_stored_ids_are_valid_requests_for_ids_not_stored(
    mock_app: tuple[httpx.AsyncClient, dict[str, Any]],
) -> None:
    client, schema = mock_app
    for path in NEEDS_STORED_IDS:
        content = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        for example in content["examples"].values():
            response = await client.post(path, json=example["value"])
            assert response.status_code == 404, (path, response.text)


async def test_error_examples_carry_the_error_code_of_their_status(
    mock_app: tuple[httpx.AsyncClient, dict[str, Any]],
) -> None:
    _, schema = mock_app
    seen = set()
    for item in schema["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if not status.isdigit() or int(status) < 400:
                    continue
                examples = response["content"]["application/json"]["examples"]
                codes = {example["value"]["error_code"] for example in examples.values()}
                assert codes == KNOWN_CODES[int(status)], (status, codes)
                for example in examples.values():
                    value = example["value"]
                    assert all(value[key] for key in ("message", "request_id", "timestamp"))
                seen.add(int(status))
    assert seen == set(KNOWN_CODES)


async def test_validation_error_example_has_a_field_detail(
    mock_app: tuple[httpx.AsyncClient, dict[str, Any]],
) -> None:
    _, schema = mock_app
    response = schema["paths"]["/api/mv/generate_video"]["post"]["responses"]["400"]
    [example] = response["content"]["application/json"]["examples"].values()
    [detail] = example["value"]["details"]
    assert set(detail) == {"field", "message", "type"}


def non_null(schema: dict[str, Any], model: str, field: str) -> dict[str, Any]:
    branches = schema["components"]["schemas"][model]["properties"][field]["anyOf"]
    [value] = [branch for branch in branches if branch.get("type") != "null"]
    return value


async def test_schema_states_the_rules_the_configs_set(
    mock_app: tuple[httpx.AsyncClient, dict[str, Any]],
) -> None:
    _, schema = mock_app
    configs = load_configs()
    assert non_null(schema, "CreateScenesRequest", "number_of_scenes")["maximum"] == 12
    assert non_null(schema, "GenerateVideoRequest", "duration")["enum"] == [4, 6, 8]
    assert non_null(schema, "GenerateVideoRequest", "aspect_ratio")["enum"] == ["16:9", "9:16"]
    image = configs.image_params.allowed
    for field in ("aspect_ratio", "safety_filter_level", "person_generation", "output_format"):
        assert non_null(schema, "GenerateCharacterReferenceRequest", field)["enum"] == getattr(
            image, field
        )


async def test_generate_video_reports_reference_and_mock_flags(
    mock_app: tuple[httpx.AsyncClient, dict[str, Any]],
) -> None:
    client, _ = mock_app
    image = await client.post(
        "/api/mv/generate_character_reference", json={"character_description": "A robot"}
    )
    without = await client.post("/api/mv/generate_video", json={"prompt": "A robot walks"})
    with_reference = await client.post(
        "/api/mv/generate_video",
        json={"prompt": "A robot walks", "reference_image_id": image.json()["image_id"]},
    )
    assert without.json()["metadata"]["has_reference_image"] is False
    assert with_reference.json()["metadata"]["has_reference_image"] is True
    assert without.json()["metadata"]["is_mock"] is True
