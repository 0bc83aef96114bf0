"""The reference image of a video request: sent as base64, or a stored character reference.

Base64 is decoded and checked before any provider is paid: the decoded size (413) before
the format, and the format by magic bytes and a real decode (PNG, JPEG or WebP, else 400).
"""

import base64
import binascii

import anyio

from backend.mv.errors import NotFound, PayloadTooLarge, ValidationFailed
from backend.mv.image_check import MAX_IMAGE_PIXELS, decoded_format
from backend.mv.image_generator import find_reference
from backend.mv.storage.base import ArtifactStore
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


async def decode_reference_image(encoded: str, max_bytes: int) -> ReferenceImage:
    """Base64 (optionally a `data:` URI) to a checked image; all of it in a worker thread,
    since a 13 MB payload costs tens of milliseconds to clean, decode and check."""
    return await anyio.to_thread.run_sync(_decode_and_check, encoded, max_bytes)


def _decode_and_check(encoded: str, max_bytes: int) -> ReferenceImage:
    payload = encoded.strip()
    if payload.startswith("data:"):
        _, comma, payload = payload.partition(",")
        if not comma:
            raise _invalid("a data: URI needs a comma before its base64 payload")
    payload = "".join(payload.split())
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise PayloadTooLarge(f"The reference image is larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid("is not valid base64") from exc
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"The reference image is larger than {max_bytes} bytes")
    mime_type = _sniff_mime_type(data)
    if mime_type is None or decoded_format(data) != PIL_FORMATS[mime_type]:
        raise _invalid(f"must be a PNG, JPEG or WebP image of at most {MAX_IMAGE_PIXELS} pixels")
    return ReferenceImage(data=data, mime_type=mime_type, source="base64")


async def load_stored_reference(image_id: str, store: ArtifactStore) -> ReferenceImage:
    """A character reference stored by generate_character_reference; unknown id → 404."""
    stored = await find_reference(image_id, store)
    data = await store.read_bytes(stored.key)
    if data is None:
        raise NotFound(f"The image for character reference {stored.image_id} is gone")
    return ReferenceImage(data=data, mime_type=stored.content_type, source=f"image_id {image_id}")
