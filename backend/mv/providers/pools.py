"""HTTP connection pools for the provider SDKs, sized for the configured concurrency.

The SDK defaults would queue requests past 100 connections and then fail with a pool
timeout. Few idle connections are kept on purpose: httpcore scans every pooled connection
on each request and response, which the benchmark showed costs the event loop more than
it saves (see .devdocs/performance.md).
"""

import ssl
from typing import Any

import aiohttp
import httpx

from backend.config import Settings

POOL_HEADROOM = 16
CONNECT_TIMEOUT_SECONDS = 10.0
IDLE_CONNECTIONS_KEPT = 32


def connection_cap(settings: Settings, kinds_sharing_the_pool: int) -> int:
    """Enough connections for every job in flight (a Replicate create may hold one for 60 s)."""
    return settings.mv_max_concurrent_generations * kinds_sharing_the_pool + POOL_HEADROOM


def httpx_limits(settings: Settings, kinds_sharing_the_pool: int) -> httpx.Limits:
    """A connection per job in flight; few idle ones kept."""
    connections = connection_cap(settings, kinds_sharing_the_pool)
    return httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=min(connections, IDLE_CONNECTIONS_KEPT),
    )


def httpx_timeout(settings: Settings) -> httpx.Timeout:
    """Reads may legitimately last as long as a generation; our own deadline bounds them."""
    return httpx.Timeout(settings.mv_generation_timeout_seconds, connect=CONNECT_TIMEOUT_SECONDS)


def aiohttp_session(
    settings: Settings, connections: int, trust: ssl.SSLContext, **options: Any
) -> aiohttp.ClientSession:
    """Like the httpx clients: proxy variables honoured, connects bounded by
    `CONNECT_TIMEOUT_SECONDS` and reads by the generation timeout (the Gemini SDK replaces
    both with one total timeout per request). Must be built inside the running event loop."""
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
