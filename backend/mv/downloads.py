"""Streams a provider's output file to disk: chunk by chunk, through a temporary file."""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx

from backend.mv.errors import BackendError
from backend.mv.runtime import Runtime
from backend.mv.storage import FileDigest, streaming_atomic_writer
from backend.mv.upstream import Deadline, backoff_seconds

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
TRANSIENT_STATUSES = {429, 500, 502, 503, 504}


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


async def _open_following_redirects(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None, backend: str
) -> httpx.Response:
    """GET with redirects followed by hand, so credentials in `headers` (e.g. Google's
    `x-goog-api-key`) are sent only to the host they were given for, never to the storage
    host a file service redirects to. httpx would only drop `Authorization`."""
    origin = _origin(httpx.URL(url))
    for _ in range(MAX_REDIRECTS + 1):
        request = client.build_request("GET", url, headers=headers)
        response = await client.send(request, stream=True, follow_redirects=False)
        if not response.is_redirect:
            return response
        await response.aclose()
        url = str(response.url.join(response.headers["location"]))
        if _origin(httpx.URL(url)) != origin:
            headers = None
    raise BackendError("The provider's download redirected too many times", backend=backend)


async def download_to_file(
    client: httpx.AsyncClient,
    url: str,
    destination: Path,
    *,
    backend: str,
    headers: dict[str, str] | None = None,
    max_attempts: int = 1,
    hold_slot: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
) -> FileDigest:
    """Download `url` to `destination` (published only when complete); returns size and hash.

    The file is already paid for, so a network failure, a 429 or a 5xx is retried (a GET
    creates nothing) with backoff, up to `max_attempts`; the caller's deadline bounds it all.
    Memory does not grow with the file: each chunk is written as it arrives. Each attempt
    streams inside `hold_slot()`.
    """
    attempt = 1
    while True:
        try:
            async with hold_slot():
                return await _download_once(client, url, destination, backend, headers)
        except BackendError as error:
            if not error.retryable or attempt >= max_attempts:
                raise
            logger.info("download of %s output failed (%s); retrying", backend, error.message)
            await asyncio.sleep(backoff_seconds(attempt, error.retry_hint_seconds))
            attempt += 1


async def download_output(
    runtime: Runtime,
    url: str,
    destination: Path,
    *,
    backend: str,
    headers: dict[str, str] | None = None,
    deadline: Deadline,
) -> FileDigest:
    """`download_to_file` with the service's client, download slots and attempt budget; the
    wait for a slot does not count against `deadline`."""
    return await download_to_file(
        runtime.clients.downloads,
        url,
        destination,
        backend=backend,
        headers=headers,
        max_attempts=runtime.settings.mv_upstream_max_attempts,
        hold_slot=lambda: deadline.holding(runtime.clients.download_slots),
    )


async def _download_once(
    client: httpx.AsyncClient,
    url: str,
    destination: Path,
    backend: str,
    headers: dict[str, str] | None,
) -> FileDigest:
    try:
        response = await _open_following_redirects(client, url, headers, backend)
        try:
            if response.status_code != httpx.codes.OK:
                error = BackendError(
                    f"The provider's output file could not be downloaded "
                    f"(HTTP {response.status_code})",
                    backend=backend,
                )
                error.retryable = response.status_code in TRANSIENT_STATUSES
                raise error
            async with streaming_atomic_writer(destination) as writer:
                async for piece in response.aiter_bytes():
                    await writer.write(piece)
        finally:
            await response.aclose()
    except httpx.RequestError as exc:
        error = BackendError(
            f"Downloading the result failed ({type(exc).__name__})", backend=backend
        )
        error.retryable = isinstance(exc, httpx.TransportError)
        raise error from exc
    return writer.digest
