"""The Gemini API client (google-genai 2.x), on an aiohttp session of ours.

On aiohttp each call costs about a third of the CPU it costs on httpx, which counts when
hundreds of operations are polled. The client closes its pool when garbage-collected, so
one lives as long as the app.
"""

import ssl

import aiohttp
from google import genai
from google.genai import types as genai_types

from backend.config import Settings
from backend.mv.providers.pools import aiohttp_session, connection_cap

KINDS_SHARING_THE_POOL = 2
"""Scene prompts and Gemini videos."""


def gemini_session(settings: Settings, trust: ssl.SSLContext) -> aiohttp.ClientSession:
    return aiohttp_session(settings, connection_cap(settings, KINDS_SHARING_THE_POOL), trust)


def build_gemini_client(
    settings: Settings, session: aiohttp.ClientSession, trust: ssl.SSLContext
) -> genai.Client | None:
    """None without `GEMINI_API_KEY`.

    One attempt in `retry_options` turns the SDK's own retries off, among them a silent
    re-send after a dropped connection that could start a second paid job; retrying is
    `retries.call_with_retries`'s decision. The SDK sets its per-request timeout (none
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
