"""The reference image of a video request: sent as base64, or a stored character reference.

Base64 is decoded and checked before any wait and any provider call: the decoded size (413)
before the format, and the format by magic bytes and a real decode (PNG, JPEG or WebP, else
400). The decoded bytes are then dropped and decoded again when the backend sends them, so a
request waiting for a slot holds only the text its body already held.

Decoding runs in the `DECODING` thread pool, in pieces (`base64_text`), so a 13 MB payload
never holds up the event loop.
"""

from functools import partial

from backend.mv import base64_text
from backend.mv.errors import NotFound, PayloadTooLarge, ValidationFailed
from backend.mv.image_check import MAX_IMAGE_PIXELS, decoded_format
from backend.mv.image_generator import find_reference
from backend.mv.storage.base import ArtifactStore
from backend.mv.thread_pools import DECODING
from backend.mv.video_backends.base import ReferenceImage

MAGIC_BYTES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
FIELD = "reference_image_base64"


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed.about(FIELD, message)


def _sniff_mime_type(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for mime_type, signatures in MAGIC_BYTES.items():
        if data.startswith(signatures):
            return mime_type
    return None


def _payload(encoded: str) -> str:
    """The base64 text without a `data:` prefix."""
    payload = encoded.strip()
    if payload.startswith("data:"):
        _, comma, payload = payload.partition(",")
        if not comma:
            raise _invalid("a data: URI needs a comma before its base64 payload")
    return payload


def _decode(payload: str) -> bytes:
    try:
        return base64_text.decode(payload)
    except ValueError as exc:
        raise _invalid("is not valid base64") from exc


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The reference image is larger than {max_bytes} bytes")


def _check(payload: str, max_bytes: int) -> tuple[str, int]:
    """The image's MIME type and size, once it is known to be a readable image of at most
    `max_bytes`; a payload whose length alone says it is too large is not decoded."""
    if len(payload) * 3 // 4 > max_bytes + 3 and len("".join(payload.split())) * 3 // 4 > (
        max_bytes + 3
    ):
        raise _too_large(max_bytes)
    data = _decode(payload)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    mime_type = _sniff_mime_type(data)
    if mime_type is None or decoded_format(data) != PIL_FORMATS[mime_type]:
        raise _invalid(f"must be a PNG, JPEG or WebP image of at most {MAX_IMAGE_PIXELS} pixels")
    return mime_type, len(data)


async def check_base64_reference(encoded: str, max_bytes: int) -> ReferenceImage:
    """Base64 (optionally a `data:` URI) checked now, decoded again when it is sent."""
    payload = _payload(encoded)
    mime_type, size_bytes = await DECODING.run(_check, payload, max_bytes)
    return ReferenceImage(
        mime_type=mime_type,
        source="base64",
        size_bytes=size_bytes,
        load=partial(DECODING.run, _decode, payload),
    )


async def find_stored_reference(image_id: str, store: ArtifactStore) -> ReferenceImage:
    """A character reference stored by generate_character_reference (unknown id → 404),
    read from the store when it is sent."""
    stored = await find_reference(image_id, store)
    size_bytes = await store.size(stored.key) or 0

    async def load() -> bytes:
        data = await store.read_bytes(stored.key)
        if data is None:
            raise NotFound(f"The image for character reference {stored.image_id} is gone")
        return data

    return ReferenceImage(
        mime_type=stored.content_type,
        source=f"image_id {image_id}",
        size_bytes=size_bytes,
        load=load,
    )
