"""Provider SDK clients, built once per process from Settings.

Each client gets an HTTP pool sized for the configured concurrency (the SDK defaults would
queue requests past 100 connections and then fail with a pool timeout), and the base URLs
come from Settings so tests and benchmarks point the real SDKs at a fake upstream. The
Google client closes its pool when garbage-collected, so one lives as long as the app.
"""

from dataclasses import dataclass

import httpx
import replicate
from google import genai
from google.genai import types as genai_types

from backend.config import Settings
from backend.mv.upstream import remember_retry_after

POOL_HEADROOM = 16
CONNECT_TIMEOUT_SECONDS = 10.0


@dataclass
class ProviderClients:
    """The live clients; a provider whose key is not set has `None` here."""

    gemini: genai.Client | None
    replicate: replicate.Client | None
    downloads: httpx.AsyncClient
    gemini_http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        """Close every pool; the Google SDK leaves a caller-supplied httpx client open."""
        await self.downloads.aclose()
        if self.gemini_http is not None:
            await self.gemini_http.aclose()
        if self.replicate is not None:
            await self.replicate._async_client.aclose()


def _limits(settings: Settings, kinds_sharing_the_pool: int) -> httpx.Limits:
    connections = settings.mv_max_concurrent_generations * kinds_sharing_the_pool + POOL_HEADROOM
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections)


def _timeout(settings: Settings) -> httpx.Timeout:
    """Reads may legitimately last as long as a generation; our own deadline bounds them."""
    return httpx.Timeout(settings.mv_generation_timeout_seconds, connect=CONNECT_TIMEOUT_SECONDS)


def build_gemini_client(settings: Settings, http_client: httpx.AsyncClient) -> genai.Client | None:
    """The SDK passes its own per-request timeout to httpx (none unless set), so set it."""
    if not settings.gemini_api_key:
        return None
    options = genai_types.HttpOptions(
        base_url=settings.google_gemini_base_url,
        httpx_async_client=http_client,
        timeout=int(settings.mv_generation_timeout_seconds * 1000),
    )
    return genai.Client(api_key=settings.gemini_api_key, http_options=options)


def build_replicate_client(settings: Settings) -> replicate.Client | None:
    if not settings.replicate_api_token:
        return None
    transport = httpx.AsyncHTTPTransport(limits=_limits(settings, 2))
    return replicate.Client(
        api_token=settings.replicate_api_token,
        base_url=settings.replicate_base_url,
        timeout=_timeout(settings),
        transport=transport,
        event_hooks={"response": [remember_retry_after]},
    )


def build_provider_clients(settings: Settings) -> ProviderClients:
    downloads = httpx.AsyncClient(limits=_limits(settings, 3), timeout=_timeout(settings))
    gemini_http = httpx.AsyncClient(limits=_limits(settings, 2), timeout=_timeout(settings))
    return ProviderClients(
        gemini=build_gemini_client(settings, gemini_http),
        replicate=build_replicate_client(settings),
        downloads=downloads,
        gemini_http=gemini_http,
    )
