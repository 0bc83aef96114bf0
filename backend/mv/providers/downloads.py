"""Streams a provider's output file into the store: chunk by chunk, published when whole.

Downloads use aiohttp rather than httpx (which the Replicate SDK uses): moving hundreds of
megabytes through one event loop costs about a third of the CPU per MiB there (its parser
is C, and it reads TLS straight from asyncio's transport), which decides how soon 200
finished clips are all on disk; see .devdocs/performance.md. URLs are sent exactly as the
provider wrote them (`encoded=True`): a signed storage URL must not be re-quoted.
"""

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from http import HTTPStatus

import aiohttp
from yarl import URL

from backend.config import Settings
from backend.mv.errors import BackendError, InsufficientStorage
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.pools import aiohttp_session
from backend.mv.providers.retries import with_retries
from backend.mv.storage.base import ArtifactStore, ArtifactWriter
from backend.mv.storage.files import FileDigest

DOWNLOAD_SLOTS = 16
"""Output files streaming at once per process; more wait their (short) turn. Each holds
buffers while it streams, and more at once cost the event loop more than they gained in
the benchmark."""
DOWNLOAD_READ_BUFFER_BYTES = 256 * 1024
"""What a download's connection buffers before reading pauses (aiohttp holds up to twice
this); more did not stream faster in the benchmark, only grew memory."""

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


async def download(
    client: aiohttp.ClientSession,
    url: str,
    open_target: Callable[[], AbstractAsyncContextManager[ArtifactWriter]],
    *,
    backend: str,
    headers: dict[str, str] | None = None,
    max_attempts: int = 1,
    hold_slot: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
) -> FileDigest:
    """Download `url` into a fresh `open_target()` per attempt; returns size and hash.

    The file is already paid for, so a network failure, a 429, a 5xx or a failure to store
    it (507 once attempts run out) is retried (a GET creates nothing) with backoff, up to
    `max_attempts`; the caller's deadline bounds it all.
    Memory does not grow with the file: each chunk is written as it arrives. Each attempt
    streams inside `hold_slot()`.
    """

    async def attempt() -> FileDigest:
        async with hold_slot():
            return await _download_once(client, url, open_target, backend, headers)

    return await with_retries(
        attempt, what=f"download of {backend} output", max_attempts=max_attempts
    )


def download_session(settings: Settings, trust: ssl.SSLContext) -> aiohttp.ClientSession:
    """The session output files stream through: `DOWNLOAD_SLOTS` connections, each
    buffering at most twice `DOWNLOAD_READ_BUFFER_BYTES`."""
    return aiohttp_session(settings, DOWNLOAD_SLOTS, trust, read_bufsize=DOWNLOAD_READ_BUFFER_BYTES)


@dataclass
class Downloader:
    """The service's download path: one session, `DOWNLOAD_SLOTS`, the attempt budget."""

    session: aiohttp.ClientSession
    max_attempts: int
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(DOWNLOAD_SLOTS))

    async def fetch(
        self,
        url: str,
        store: ArtifactStore,
        key: str,
        *,
        backend: str,
        deadline: Deadline,
        headers: dict[str, str] | None = None,
    ) -> FileDigest:
        """`url` stored under `key`; the wait for a slot does not count against `deadline`."""
        return await download(
            self.session,
            url,
            lambda: store.writer(key),
            backend=backend,
            headers=headers,
            max_attempts=self.max_attempts,
            hold_slot=lambda: deadline.holding(self.slots),
        )


async def _download_once(
    client: aiohttp.ClientSession,
    url: str,
    open_target: Callable[[], AbstractAsyncContextManager[ArtifactWriter]],
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
            async with open_target() as writer:
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
    except OSError as exc:
        # Storing failed: the output folder was removed (the staged file with it), the disk
        # filled up. The file is paid for and a GET costs nothing: download it again into
        # a fresh staged file, whose folder the store makes anew.
        storage_error = InsufficientStorage.while_storing(exc, backend=backend)
        storage_error.retryable = True
        raise storage_error from exc
    return writer.digest
