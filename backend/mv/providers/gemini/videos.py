"""Veo operations on the Gemini Developer API: start, poll until done, find the clip.

The operation is started with a REST call of our own (`predictLongRunning`) rather than the
SDK's `generate_videos`: the SDK base64-encodes a reference image and `json.dumps` the whole
body on the event loop, then hands aiohttp one 13 MB write (about 80 ms of the loop for a
10 MB image). Here the body is built in a worker thread, in pieces (`build_veo_request`),
and streamed piece by piece on the SDK's own aiohttp session; errors are read with the
SDK's `APIError.raise_for_async_response`, so they translate as the SDK's do. Polling
(`operations.get`) stays with the SDK. The Developer API offers no way to cancel an
operation, so one still running at the deadline is left to finish upstream (and is billed).
"""

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from yarl import URL

from backend.mv import base64_text
from backend.mv.errors import ContentPolicyViolation, GenerationFailed
from backend.mv.providers import JobPolicy, Provider
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.downloads import same_origin
from backend.mv.providers.gemini.errors import GEMINI_ERRORS
from backend.mv.providers.retries import call_with_retries, read_status_tolerantly

logger = logging.getLogger(__name__)

CALL_SLOTS = 32
"""Short Gemini video calls (create, status reads) at once per process; keeps 200 polls
from landing in one burst on the event loop."""
API_VERSION = "v1beta"


@dataclass(frozen=True)
class VeoRequest:
    """A `predictLongRunning` body as the pieces it is sent in (JSON text, then the
    reference image's base64 in pieces, then the rest)."""

    pieces: list[bytes]

    @property
    def size(self) -> int:
        return sum(len(piece) for piece in self.pieces)

    async def stream(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


def build_veo_request(
    prompt: str,
    parameters: Mapping[str, Any],
    reference_image: tuple[bytes, str] | None,
) -> VeoRequest:
    """The body google-genai 2.x sends for `generate_videos` in Developer API mode:
    `instances[0]` holds the prompt and `referenceImages` (an `ASSET` image as
    `bytesBase64Encoded` and `mimeType`), `parameters` the REST names of the options.
    CPU-bound for a large image: call it in a worker thread (`thread_pools.DECODING`)."""
    instance: dict[str, Any] = {"prompt": prompt}
    if reference_image is None:
        body = {"instances": [instance], "parameters": dict(parameters)}
        return VeoRequest([json.dumps(body).encode()])
    data, mime_type = reference_image
    marker = f"mv-reference-image-{uuid.uuid4().hex}"
    instance["referenceImages"] = [
        {"image": {"bytesBase64Encoded": marker, "mimeType": mime_type}, "referenceType": "ASSET"}
    ]
    text = json.dumps({"instances": [instance], "parameters": dict(parameters)})
    before, _, after = text.partition(marker)
    return VeoRequest([before.encode(), *base64_text.encode_pieces(data), after.encode()])


async def start_video_operation(
    session: aiohttp.ClientSession,
    *,
    base_url: str,
    api_key: str,
    model: str,
    request: VeoRequest,
    deadline: Deadline,
    policy: JobPolicy,
    slots: asyncio.Semaphore,
) -> genai_types.GenerateVideosOperation:
    """POST `request` to `models/{model}:predictLongRunning`; the started operation (its
    name: `operations.get` reads the rest). Holds one of `slots` per attempt."""
    url = f"{base_url.rstrip('/')}/{API_VERSION}/models/{model}:predictLongRunning"
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(request.size),
        "x-goog-api-key": api_key,
    }

    async def start() -> genai_types.GenerateVideosOperation:
        async with (
            deadline.holding(slots),
            session.post(url, data=request.stream(), headers=headers) as response,
        ):
            await genai_errors.APIError.raise_for_async_response(response)
            answer = await response.json()
        name = answer.get("name") if isinstance(answer, dict) else None
        if not isinstance(name, str):
            raise GenerationFailed("The provider started no operation", backend=Provider.GEMINI)
        return genai_types.GenerateVideosOperation(name=name)

    operation = await call_with_retries(
        start,
        errors=GEMINI_ERRORS,
        backend=Provider.GEMINI,
        max_attempts=policy.max_attempts,
        deadline=deadline,
    )
    logger.info("operation %s started", operation.name)
    return operation


async def wait_for_video_operation(
    client: genai.Client,
    operation: genai_types.GenerateVideosOperation,
    *,
    policy: JobPolicy,
    slots: asyncio.Semaphore,
    deadline: Deadline,
) -> genai_types.GenerateVideosOperation:
    """Poll `operation` with the SDK until it is done; each read holds one of `slots`."""

    async def read(
        current: genai_types.GenerateVideosOperation,
    ) -> genai_types.GenerateVideosOperation:
        async with deadline.holding(slots):
            return await client.aio.operations.get(current)

    while not operation.done:
        await asyncio.sleep(policy.poll_interval_seconds)
        operation = await read_status_tolerantly(
            read,
            operation,
            errors=GEMINI_ERRORS,
            backend=Provider.GEMINI,
            job=f"operation {operation.name}",
        )
    return operation


def finished_video_uri(operation: genai_types.GenerateVideosOperation) -> str:
    """The clip's download URI from a done operation, or the error the operation carries."""
    if operation.error:
        message = str(operation.error.get("message", operation.error))
        raise GenerationFailed(f"The model failed: {message}", backend=Provider.GEMINI)
    response = operation.response or operation.result
    if response is not None and response.rai_media_filtered_count:
        reasons = "; ".join(response.rai_media_filtered_reasons or []) or "no reason given"
        raise ContentPolicyViolation(
            f"The provider's safety filter removed the video: {reasons}", backend=Provider.GEMINI
        )
    videos = (response.generated_videos if response else None) or []
    uri = videos[0].video.uri if videos and videos[0].video else None
    if not uri:
        raise GenerationFailed("The operation finished without a video", backend=Provider.GEMINI)
    return uri


def download_headers(uri: str, api_key: str, base_url: str) -> dict[str, str] | None:
    """The API key goes only to the Gemini API itself, over HTTPS; a clip URI on any other
    host is fetched without it."""
    if URL(uri, encoded=True).scheme == "https" and same_origin(uri, base_url):
        return {"x-goog-api-key": api_key}
    return None
