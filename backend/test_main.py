"""The service foundation as a client sees it: info routes, request ids, the error shape,
body limits, authentication and startup cleanup."""

import json
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from backend.api.dependencies import get_store
from backend.config import REPO_ROOT
from backend.mv.storage.files import staging_folder
from backend.testing.apps import make_settings, serve_app
from backend.testing.contract import ERROR_KEYS, assert_error_shape


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(make_settings(tmp_path, mv_mock_mode=True)) as (_, client):
        yield client


async def test_root_reports_mode_providers_and_every_endpoint(client: httpx.AsyncClient) -> None:
    body = (await client.get("/")).json()
    assert body["mode"] == "mock"
    assert body["providers_configured"] == {"gemini": False, "replicate": False}
    expected = {
        "health": "/health",
        "docs": "/docs",
        "redoc": "/redoc",
        "openapi": "/openapi.json",
        "mv_create_scenes": "/api/mv/create_scenes",
        "mv_generate_character_reference": "/api/mv/generate_character_reference",
        "mv_get_character_reference": "/api/mv/get_character_reference/{image_id}",
        "mv_generate_video": "/api/mv/generate_video",
        "mv_get_video": "/api/mv/get_video/{video_id}",
        "mv_get_video_info": "/api/mv/get_video/{video_id}/info",
    }
    assert {name: body["endpoints"].get(name) for name in expected} == expected


async def test_root_reports_live_mode_and_configured_providers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, gemini_api_key="k", replicate_api_token="")
    async with serve_app(settings) as (_, client):
        body = (await client.get("/")).json()
    assert body["mode"] == "live"
    assert body["providers_configured"] == {"gemini": True, "replicate": False}


async def test_health_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"


async def test_every_response_gets_a_fresh_request_id(client: httpx.AsyncClient) -> None:
    first = (await client.get("/health")).headers["x-request-id"]
    second = (await client.get("/health")).headers["x-request-id"]
    assert first
    assert first != second


async def test_unknown_path_is_a_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error_shape(await client.get("/api/mv/nope"), 404, "NOT_FOUND")


async def test_wrong_method_is_a_405_in_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error_shape(await client.get("/api/mv/create_scenes"), 405, "NOT_FOUND")


async def test_malformed_json_is_a_400_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/mv/create_scenes",
        content=b'{"idea": "unterminated',
        headers={"content-type": "application/json"},
    )
    body = assert_error_shape(response, 400, "VALIDATION_ERROR")
    assert [item["field"] for item in body["details"]] == ["body"]


async def test_missing_fields_are_listed_per_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/mv/create_scenes", json={"idea": "x"})
    body = assert_error_shape(response, 400, "VALIDATION_ERROR")
    assert [item["field"] for item in body["details"]] == ["character_description"]


async def test_declared_body_over_the_limit_is_a_413(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_max_request_bytes=1000)
    async with serve_app(settings) as (_, client):
        response = await client.post(
            "/api/mv/create_scenes",
            json={"idea": "x" * 2000, "character_description": "y"},
        )
    assert_error_shape(response, 413, "PAYLOAD_TOO_LARGE")


async def test_streamed_body_over_the_limit_is_a_413(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_max_request_bytes=1000)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"idea": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'", "character_description": "y"}'

    async with serve_app(settings) as (_, client):
        response = await client.post(
            "/api/mv/create_scenes", content=chunks(), headers={"content-type": "application/json"}
        )
    assert_error_shape(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": "Basic k1"}],
)
async def test_api_routes_need_a_valid_key_when_keys_are_set(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_api_keys="k1, k2")
    async with serve_app(settings) as (_, client):
        response = await client.get(f"/api/mv/get_video/{'0' * 8}", headers=headers)
    assert_error_shape(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer k2"}, {"X-API-Key": "k1"}])
async def test_either_key_header_is_accepted(tmp_path: Path, headers: dict[str, str]) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_api_keys="k1,k2")
    async with serve_app(settings) as (_, client):
        response = await client.post(
            "/api/mv/create_scenes",
            json={"idea": "a", "character_description": "b", "number_of_scenes": 1},
            headers=headers,
        )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/", "/health", "/docs", "/redoc", "/openapi.json"])
async def test_service_routes_stay_open_with_keys_set(tmp_path: Path, path: str) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_api_keys="k1")
    async with serve_app(settings) as (_, client):
        assert (await client.get(path)).status_code == 200


async def test_cors_allows_configured_origin(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mv_cors_origins="https://app.example")
    async with serve_app(settings) as (_, client):
        response = await client.get("/health", headers={"Origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "https://app.example"


async def test_leftover_temporary_files_are_removed_at_startup(tmp_path: Path) -> None:
    staging = staging_folder(tmp_path)
    staging.mkdir()
    leftover = staging / "deadbeef.tmp"
    leftover.write_bytes(b"partial")
    finished = tmp_path / "videos" / "kept.mp4"
    finished.parent.mkdir()
    finished.write_bytes(b"whole")
    async with serve_app(make_settings(tmp_path)):
        assert not leftover.exists()
        assert finished.read_bytes() == b"whole"


async def test_openapi_documents_the_error_shape(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    responses = schema["paths"]["/api/mv/generate_video"]["post"]["responses"]
    assert {"400", "422", "429", "502", "503", "504"} <= set(responses)
    error_schema = json.dumps(schema["components"]["schemas"]["ErrorResponse"])
    assert all(key in error_schema for key in ERROR_KEYS)


async def test_refusals_before_the_app_carry_cors_headers(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, mv_max_request_bytes=100, mv_cors_origins="https://app.example"
    )
    async with serve_app(settings) as (_, client):
        response = await client.post(
            "/api/mv/create_scenes",
            content=b"x" * 200,
            headers={"Origin": "https://app.example", "content-type": "application/json"},
        )
    assert_error_shape(response, 413, "PAYLOAD_TOO_LARGE")
    assert response.headers["access-control-allow-origin"] == "https://app.example"


async def test_version_is_the_projects_own(client: httpx.AsyncClient) -> None:
    """The project is not installed as a package, so no installed metadata can supply it."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert (await client.get("/")).json()["version"] == project["version"]
    assert (await client.get("/openapi.json")).json()["info"]["version"] == project["version"]


async def test_an_unexpected_error_is_a_500_in_the_error_shape_with_cors_headers(
    tmp_path: Path,
) -> None:
    async def broken_store() -> None:
        raise RuntimeError("disk on fire")

    settings = make_settings(tmp_path, mv_cors_origins="https://app.example")
    async with serve_app(settings) as (app, client):
        app.dependency_overrides[get_store] = broken_store
        response = await client.get(
            "/api/mv/get_video/3f2b9c1e-8d4a-4f6e-9b7a-1c2d3e4f5a6b",
            headers={"Origin": "https://app.example"},
        )
    body = assert_error_shape(response, 500, "INTERNAL_ERROR")
    assert "disk on fire" not in body["message"]
    assert response.headers["access-control-allow-origin"] == "https://app.example"
