"""A reference image as a Replicate model input: a `data:` URI when small, an uploaded file
when large.

A `data:` URI costs no round trip, but it travels inside the prediction's JSON: the SDK
encodes it on the event loop (httpx's `json.dumps`, about 67 ms for a 13 MB image), and
every answer about the prediction echoes its input, parsed again on the loop at the create
and at every poll (about 18 ms each). Above `DATA_URI_MAX_BYTES` the image is uploaded
through Replicate's files API instead (`files.async_create`: a multipart body that httpx
streams in 64 KiB pieces), and the model gets the file's URL. The file is deleted once the
prediction has ended, best effort: Replicate also expires it after a day.
"""

import asyncio
import io
import logging
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
import replicate
from replicate.exceptions import ReplicateError
from replicate.file import File

from backend.mv import base64_text
from backend.mv.providers import Provider
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.replicate.errors import REPLICATE_ERRORS
from backend.mv.providers.retries import call_with_retries
from backend.mv.thread_pools import DECODING

if TYPE_CHECKING:
    # Only for annotations: video_backends imports this module to build its backends.
    from backend.mv.video_backends.base import ReferenceImage

logger = logging.getLogger(__name__)

DATA_URI_MAX_BYTES = 256 * 1024
"""Decoded size up to which an image goes inline: its JSON costs the loop under 1 ms."""
DELETE_TIMEOUT_SECONDS = 10.0


async def _upload(
    client: replicate.Client, data: bytes, mime_type: str, *, deadline: Deadline, max_attempts: int
) -> File:
    filename = f"reference{mimetypes.guess_extension(mime_type) or ''}"
    return await call_with_retries(
        lambda: client.files.async_create(
            io.BytesIO(data), filename=filename, content_type=mime_type
        ),
        errors=REPLICATE_ERRORS,
        backend=Provider.REPLICATE,
        max_attempts=max_attempts,
        deadline=deadline,
    )


async def _delete_quietly(client: replicate.Client, file_id: str) -> None:
    try:
        async with asyncio.timeout(DELETE_TIMEOUT_SECONDS):
            await client.files.async_delete(file_id)
    except (TimeoutError, ReplicateError, httpx.HTTPError) as exc:
        logger.warning("could not delete uploaded file %s: %r", file_id, exc)


@asynccontextmanager
async def reference_image_url(
    client: replicate.Client,
    image: "ReferenceImage",
    *,
    deadline: Deadline,
    max_attempts: int,
) -> AsyncIterator[str]:
    """The URL to put in the model's input for `image`, valid for the block.

    The upload is retried like a create (nothing is paid for yet) and counts against
    `deadline`; run it inside `deadline.enforced(...)`. The decoded bytes are not kept
    while the prediction runs.
    """
    data = await image.load()
    if len(data) <= DATA_URI_MAX_BYTES:
        yield f"data:{image.mime_type};base64,{await DECODING.run(base64_text.encode, data)}"
        return
    uploaded = await _upload(
        client, data, image.mime_type, deadline=deadline, max_attempts=max_attempts
    )
    del data
    logger.info("reference image uploaded as file %s (%d bytes)", uploaded.id, uploaded.size)
    try:
        yield uploaded.urls["get"]
    finally:
        await _delete_quietly(client, uploaded.id)
