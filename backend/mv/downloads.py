"""Streams a provider's output file to disk: chunk by chunk, through a temporary file.

Downloads use aiohttp rather than httpx (which the Replicate SDK uses): moving hundreds of
megabytes through one event loop costs about a third of the CPU per MiB there (its parser
is C, and it reads TLS straight from asyncio's transport), which decides how soon 200
finished clips are all on disk; see .devdocs/performance.md. URLs are sent exactly as the
provider wrote them (`encoded=True`): a signed storage URL must not be re-quoted.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from http import HTTPStatus
from pathlib import Path

import aiohttp
from yarl import URL

from backend.mv.errors import BackendError
from backend.mv.runtime import Runtime
from backend.mv.storage import FileDigest, streaming_atomic_writer
from backend.mv.upstream import Deadline, backoff_seconds

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
TRANSIENT_STATUSES = {429, 500, 502, 503, 504}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
TRANSIENT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
"""Lost connections, read timeouts and cut-short bodies: worth another GET."""


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.host, url.port


def same_origin(first: str, second: str) -> bool:
    """Scheme, host and port alike (a default port counts as written out)."""
    return _origin(URL(first, encoded=True)) == _origin(URL(second, encoded=True))


def _redirect_target(response: aiohttp.ClientResponse, location: str, backend: str) -> URL:
    try:
        return response.url.join(URL(location, encoded=True))
    except ValueError as exc:
        raise BackendError(
            "The provider's download redirected to an invalid URL", backend=backend
        ) from exc


async def _open_following_redirects(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str] | None, backend: str
) -> aiohttp.ClientResponse:
    """GET with redirects followed by hand, so credentials in `headers` (e.g. Google's
    `x-goog-api-key`) are sent only to the host they were given for, never to the storage
    host a file service redirects to. A client's own redirect handling drops only
    `Authorization`."""
    target = URL(url, encoded=True)
    origin = _origin(target)
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.get(target, headers=headers, allow_redirects=False)
        location = response.headers.get("location")
        if response.status not in REDIRECT_STATUSES or location is None:
            return response
        response.release()
        target = _redirect_target(response, location, backend)
        if _origin(target) != origin:
            headers = None
    raise BackendError("The provider's download redirected too many times", backend=backend)


async def download_to_file(
    client: aiohttp.ClientSession,
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
    client: aiohttp.ClientSession,
    url: str,
    destination: Path,
    backend: str,
    headers: dict[str, str] | None,
) -> FileDigest:
    try:
        response = await _open_following_redirects(client, url, headers, backend)
        try:
            if response.status != HTTPStatus.OK:
                error = BackendError(
                    f"The provider's output file could not be downloaded (HTTP {response.status})",
                    backend=backend,
                )
                error.retryable = response.status in TRANSIENT_STATUSES
                raise error
            async with streaming_atomic_writer(destination) as writer:
                async for piece, _ in response.content.iter_chunks():
                    await writer.write(piece)
        finally:
            response.release()
    except aiohttp.ClientError as exc:
        error = BackendError(
            f"Downloading the result failed ({type(exc).__name__})", backend=backend
        )
        error.retryable = isinstance(exc, TRANSIENT_ERRORS)
        raise error from exc
    return writer.digest
