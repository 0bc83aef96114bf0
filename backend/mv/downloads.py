"""Streams a provider's output file to disk: chunk by chunk, through a temporary file."""

from pathlib import Path

import httpx

from backend.mv.errors import BackendError
from backend.mv.storage import StreamedFile, streaming_atomic_writer

CHUNK_BYTES = 1024 * 1024
MAX_REDIRECTS = 5


async def _open_following_redirects(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None, backend: str
) -> httpx.Response:
    """GET with redirects followed by hand, so credentials in `headers` (e.g. Google's
    `x-goog-api-key`) are sent only to the host they were given for, never to the storage
    host a file service redirects to. httpx would only drop `Authorization`."""
    origin = httpx.URL(url).host
    for _ in range(MAX_REDIRECTS + 1):
        request = client.build_request("GET", url, headers=headers)
        response = await client.send(request, stream=True, follow_redirects=False)
        if not response.is_redirect:
            return response
        await response.aclose()
        url = str(response.url.join(response.headers["location"]))
        if httpx.URL(url).host != origin:
            headers = None
    raise BackendError("The provider's download redirected too many times", backend=backend)


async def download_to_file(
    client: httpx.AsyncClient,
    url: str,
    destination: Path,
    *,
    backend: str,
    headers: dict[str, str] | None = None,
) -> StreamedFile:
    """Download `url` to `destination` (published only when complete); returns size and hash.

    Memory does not grow with the file: each chunk is written as it arrives.
    """
    try:
        response = await _open_following_redirects(client, url, headers, backend)
        try:
            if response.status_code != httpx.codes.OK:
                raise BackendError(
                    f"The provider's output file could not be downloaded "
                    f"(HTTP {response.status_code})",
                    backend=backend,
                )
            async with streaming_atomic_writer(destination) as (handle, written):
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    written.update(chunk)
                    await handle.write(chunk)
        finally:
            await response.aclose()
    except httpx.TransportError as exc:
        raise BackendError(
            f"Downloading the result failed ({type(exc).__name__})", backend=backend
        ) from exc
    return written
