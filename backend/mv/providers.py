"""Provider SDK clients, built once per process from Settings.

Each client gets an HTTP pool sized for the configured concurrency (the SDK defaults would
queue requests past 100 connections and then fail with a pool timeout), and the base URLs
come from Settings so tests and benchmarks point the real SDKs at a fake upstream. The
Google client closes its pool when garbage-collected, so one lives as long as the app.

The Gemini SDK and output downloads run on aiohttp sessions, the Replicate SDK (which takes
only httpx) on httpx: per MiB and per call, aiohttp costs the event loop about a third of
what httpx does. Two things are bounded on purpose, because the benchmark showed they cost
the event loop far more than they gain (see .devdocs/performance.md): httpcore scans every
pooled connection on each request and response, so few idle connections are kept; and
output downloads, each holding buffers while it streams, take turns in a few slots.
"""

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import replicate
from google import genai
from google.genai import types as genai_types

from backend.config import Settings
from backend.mv.errors import BackendNotConfigured
from backend.mv.upstream import remember_retry_after

GEMINI_BACKEND = "gemini"
REPLICATE_BACKEND = "replicate"

POOL_HEADROOM = 16
CONNECT_TIMEOUT_SECONDS = 10.0
IDLE_CONNECTIONS_KEPT = 32
DOWNLOAD_SLOTS = 16
"""Output files streaming at once per process; more wait their (short) turn."""
DOWNLOAD_READ_BUFFER_BYTES = 256 * 1024
"""What a download's connection buffers before reading pauses (aiohttp holds up to twice
this); more did not stream faster in the benchmark, only grew memory."""
GEMINI_CALL_SLOTS = 32
"""Short Gemini video calls (create, status reads) at once; keeps 200 polls from landing in
one burst on the loop."""


@dataclass
class ProviderClients:
    """The live clients; a provider whose key is not set has `None` here."""

    gemini: genai.Client | None
    replicate: replicate.Client | None
    downloads: aiohttp.ClientSession
    gemini_session: aiohttp.ClientSession
    download_slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(DOWNLOAD_SLOTS)
    )
    gemini_call_slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(GEMINI_CALL_SLOTS)
    )

    def require_gemini(self) -> genai.Client:
        if self.gemini is None:
            raise BackendNotConfigured("GEMINI_API_KEY is not set", backend=GEMINI_BACKEND)
        return self.gemini

    def require_replicate(self) -> replicate.Client:
        if self.replicate is None:
            raise BackendNotConfigured("REPLICATE_API_TOKEN is not set", backend=REPLICATE_BACKEND)
        return self.replicate

    async def aclose(self) -> None:
        """Close every pool; the Google SDK leaves a caller-supplied session open."""
        await self.downloads.close()
        await self.gemini_session.close()
        if self.replicate is not None:
            await self.replicate._async_client.aclose()


def _connection_cap(settings: Settings, kinds_sharing_the_pool: int) -> int:
    """Enough connections for every job in flight (a Replicate create may hold one for 60 s)."""
    return settings.mv_max_concurrent_generations * kinds_sharing_the_pool + POOL_HEADROOM


def _limits(settings: Settings, kinds_sharing_the_pool: int) -> httpx.Limits:
    """A connection per job in flight; few idle ones kept."""
    connections = _connection_cap(settings, kinds_sharing_the_pool)
    return httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=min(connections, IDLE_CONNECTIONS_KEPT),
    )


def _timeout(settings: Settings) -> httpx.Timeout:
    """Reads may legitimately last as long as a generation; our own deadline bounds them."""
    return httpx.Timeout(settings.mv_generation_timeout_seconds, connect=CONNECT_TIMEOUT_SECONDS)


def _aiohttp_session(
    settings: Settings, connections: int, trust: ssl.SSLContext, **options: Any
) -> aiohttp.ClientSession:
    """Like the httpx clients: proxy variables honoured, connects bounded by
    `CONNECT_TIMEOUT_SECONDS` and reads by the generation timeout (the Gemini SDK replaces
    both with one total timeout per request)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, ssl=trust),
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=CONNECT_TIMEOUT_SECONDS,
            sock_read=settings.mv_generation_timeout_seconds,
        ),
        trust_env=True,
        **options,
    )


def download_session(settings: Settings, trust: ssl.SSLContext) -> aiohttp.ClientSession:
    """The session output files stream through: `DOWNLOAD_SLOTS` connections, each
    buffering at most twice `DOWNLOAD_READ_BUFFER_BYTES`."""
    return _aiohttp_session(
        settings, DOWNLOAD_SLOTS, trust, read_bufsize=DOWNLOAD_READ_BUFFER_BYTES
    )


def build_gemini_client(
    settings: Settings, session: aiohttp.ClientSession, trust: ssl.SSLContext
) -> genai.Client | None:
    """The SDK runs on our aiohttp session: each call costs about a third of the CPU it
    costs on httpx, which counts when hundreds of operations are polled.

    One attempt in `retry_options` turns the SDK's own retries off, among them a silent
    re-send after a dropped connection that could start a second paid job; retrying is
    `upstream.call_with_retries`'s decision. The SDK sets its per-request timeout (none
    unless given) and TLS context (its own unless given), so give both.
    """
    if not settings.gemini_api_key:
        return None
    options = genai_types.HttpOptions(
        base_url=settings.google_gemini_base_url,
        aiohttp_client=session,
        async_client_args={"ssl": trust},
        timeout=int(settings.mv_generation_timeout_seconds * 1000),
        retry_options=genai_types.HttpRetryOptions(attempts=1),
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
    """Must run inside the event loop: aiohttp binds its sessions to it.

    Every client trusts what httpx trusts by default: certifi, or `SSL_CERT_FILE` /
    `SSL_CERT_DIR` as set now.
    """
    trust = httpx.create_ssl_context()
    gemini_session = _aiohttp_session(settings, _connection_cap(settings, 2), trust)
    return ProviderClients(
        gemini=build_gemini_client(settings, gemini_session, trust),
        replicate=build_replicate_client(settings),
        downloads=download_session(settings, trust),
        gemini_session=gemini_session,
    )
