"""Streams a provider's output file to disk: chunk by chunk, through a temporary file."""

from pathlib import Path

import httpx

from backend.mv.errors import BackendError
from backend.mv.storage import StreamedFile, streaming_atomic_writer
from backend.mv.upstream import provider_status_error

CHUNK_BYTES = 1024 * 1024


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
        async with client.stream("GET", url, headers=headers) as response:
            if response.status_code != httpx.codes.OK:
                await response.aread()
                raise provider_status_error(
                    response.status_code, f"download failed: {response.text[:200]}", backend
                )
            async with streaming_atomic_writer(destination) as (handle, written):
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    written.update(chunk)
                    await handle.write(chunk)
    except httpx.TransportError as exc:
        raise BackendError(
            f"Downloading the result failed ({type(exc).__name__})", backend=backend
        ) from exc
    return written
