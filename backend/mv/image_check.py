"""Deciding whether bytes are a real image, safely.

A small compressed file can claim an enormous canvas (a 650 KB PNG of 12000 x 14000 pixels
decodes to 700 MB), so the pixel count is checked from the header before anything is
decoded, and Pillow's decompression-bomb warning is treated as a refusal.
"""

import io
import warnings

from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 4096 * 4096


def decoded_format(data: bytes) -> str | None:
    """Pillow's format name (`PNG`, `JPEG`, `WEBP`, ...) after a full decode, or None when the
    bytes are not a readable image of at most `MAX_IMAGE_PIXELS`. CPU-bound: call it in a
    worker thread."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    return None
                image.load()
                return image.format
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        return None
