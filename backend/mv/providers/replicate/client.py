"""The Replicate client (the SDK takes only httpx), with a pool sized for our caps."""

import httpx
import replicate

from backend.config import Settings
from backend.mv.providers.pools import httpx_limits, httpx_timeout
from backend.mv.providers.replicate.errors import remember_retry_after

KINDS_SHARING_THE_POOL = 2
"""Character images and Replicate videos."""


def build_replicate_client(settings: Settings) -> replicate.Client | None:
    """None without `REPLICATE_API_TOKEN`."""
    if not settings.replicate_api_token:
        return None
    transport = httpx.AsyncHTTPTransport(limits=httpx_limits(settings, KINDS_SHARING_THE_POOL))
    return replicate.Client(
        api_token=settings.replicate_api_token,
        base_url=settings.replicate_base_url,
        timeout=httpx_timeout(settings),
        transport=transport,
        event_hooks={"response": [remember_retry_after]},
    )


async def close_replicate_client(client: replicate.Client | None) -> None:
    """The SDK has no close of its own; its async httpx client holds the pool."""
    if client is not None:
        await client._async_client.aclose()
