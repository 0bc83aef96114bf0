"""Build the real app for a test: its own Settings, its lifespan run, an httpx client on it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from google import genai

from backend.config import Settings
from backend.main import create_app
from backend.mv.providers.gemini.client import build_gemini_client, gemini_session
from backend.testing.server_process import TEST_GEMINI_KEY, TEST_REPLICATE_TOKEN


def make_settings(output_dir: Path, **overrides: Any) -> Settings:
    """Settings isolated from the developer's `.env` and environment defaults."""
    values: dict[str, Any] = {
        "mv_output_dir": output_dir,
        "mv_mock_delay_seconds": 0.0,
        "mv_poll_interval_seconds": 0.05,
        **overrides,
    }
    return Settings(_env_file=None, **values)


def live_settings(output_dir: Path, upstream_base_url: str, **overrides: Any) -> Settings:
    """Live mode with test keys, both SDKs pointed at the fake upstream."""
    return make_settings(
        output_dir,
        gemini_api_key=TEST_GEMINI_KEY,
        replicate_api_token=TEST_REPLICATE_TOKEN,
        replicate_base_url=upstream_base_url,
        google_gemini_base_url=upstream_base_url,
        **overrides,
    )


@asynccontextmanager
async def serve_app(
    settings: Settings, **app_options: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Run the app's lifespan and yield it with a client that talks to it in-process."""
    app = create_app(settings, **app_options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=60
        ) as client:
            yield app, client


@asynccontextmanager
async def service_gemini_client(settings: Settings) -> AsyncIterator[genai.Client]:
    """The Gemini client the service builds for `settings` (which must hold a key), on its
    own aiohttp session, closed afterwards."""
    trust = httpx.create_ssl_context()
    async with gemini_session(settings, trust) as session:
        client = build_gemini_client(settings, session, trust)
        assert client is not None, "settings without GEMINI_API_KEY"
        yield client
