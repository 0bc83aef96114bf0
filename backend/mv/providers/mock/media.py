"""Placeholder media for mock mode: real files that real tools open, made locally for free.

Mock mode must exercise the same paths as live mode (storage, metadata, browsers playing the
result), so these writers produce genuine PNG/JPEG images and H.264/AAC MP4 clips rather than
stub bytes. Neither blocks the event loop: Pillow runs in a worker thread and ffmpeg in a
subprocess. Both write straight to the path they are given; the caller owns temporary names
and the atomic rename, which is why formats are always passed explicitly (the path may end in
``.tmp``).
"""

import functools
import hashlib
import textwrap
from pathlib import Path

import anyio.to_thread
from PIL import Image, ImageDraw, ImageFont

from backend.mv.assembly.ffmpeg import FFmpegFailed, run_ffmpeg

# About 512 px on the long side: big enough to look at, small enough to make in milliseconds.
IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (512, 512),
    "9:16": (288, 512),
    "16:9": (512, 288),
    "3:4": (384, 512),
    "4:3": (512, 384),
}
# Even dimensions, as yuv420p requires.
VIDEO_SIZES: dict[str, tuple[int, int]] = {
    "16:9": (320, 180),
    "9:16": (180, 320),
}
VIDEO_FPS = 12

_PILLOW_FORMATS = {"png": "PNG", "jpg": "JPEG"}


class MockMediaError(RuntimeError):
    """ffmpeg failed to produce a mock clip; the message ends with the tail of its stderr."""


def _label_digest(label: str) -> bytes:
    """Stable per-label randomness, so different requests look (and hash) different."""
    return hashlib.sha256(label.encode("utf-8")).digest()


async def write_mock_image(path: Path, *, aspect_ratio: str, image_format: str, label: str) -> None:
    """Write a placeholder image to ``path``: a label-seeded gradient with the label drawn on it.

    ``image_format`` is ``"png"`` or ``"jpg"``; ``aspect_ratio`` is a key of ``IMAGE_SIZES``.
    Raises ``ValueError`` for anything else, before touching the file.
    """
    if aspect_ratio not in IMAGE_SIZES:
        raise ValueError(f"unsupported aspect_ratio for a mock image: {aspect_ratio!r}")
    if image_format not in _PILLOW_FORMATS:
        raise ValueError(f"unsupported image_format for a mock image: {image_format!r}")
    await anyio.to_thread.run_sync(
        functools.partial(
            _render_image,
            path,
            size=IMAGE_SIZES[aspect_ratio],
            pillow_format=_PILLOW_FORMATS[image_format],
            label=label,
        )
    )


def _render_image(path: Path, *, size: tuple[int, int], pillow_format: str, label: str) -> None:
    digest = _label_digest(label)
    top = Image.new("RGB", size, tuple(digest[0:3]))
    bottom = Image.new("RGB", size, tuple(digest[3:6]))
    mask = Image.linear_gradient("L").resize(size)
    image = Image.composite(bottom, top, mask)

    # Without FreeType, Pillow's default font is a Latin-1 bitmap font that raises on other
    # characters; ASCII with "?" draws the same everywhere.
    safe_label = label.encode("ascii", "replace").decode("ascii")
    lines = ["MOCK", *textwrap.wrap(safe_label, width=size[0] // 8)[:6]]
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.rectangle((8, 8, size[0] - 8, 24 + 14 * len(lines)), fill=(0, 0, 0))
    draw.multiline_text((16, 16), "\n".join(lines), font=font, fill=(255, 255, 255))

    image.save(path, format=pillow_format)


async def write_mock_video(
    path: Path, *, aspect_ratio: str, duration_seconds: int, with_audio: bool, label: str
) -> None:
    """Write a small browser-playable MP4 test pattern to ``path``.

    H.264 Constrained Baseline level 3.0, yuv420p, ``+faststart``, exactly
    ``duration_seconds`` long at ``VIDEO_FPS`` (the lavfi sources are endless; ``-t`` cuts
    both); an AAC sine tone only when ``with_audio`` is true, no audio stream at all otherwise.
    The label seeds the pattern's hue and the tone's pitch and is stored as the title. Raises
    ``ValueError`` for bad arguments and ``MockMediaError`` if ffmpeg fails; a cancelled call
    kills ffmpeg and may leave a partial file for the caller to remove.
    """
    if aspect_ratio not in VIDEO_SIZES:
        raise ValueError(f"unsupported aspect_ratio for a mock video: {aspect_ratio!r}")
    if duration_seconds <= 0:
        raise ValueError(f"duration_seconds must be positive, got {duration_seconds}")
    width, height = VIDEO_SIZES[aspect_ratio]
    digest = _label_digest(label)
    hue_degrees = digest[0] * 360 // 256
    tone_hz = 220 + digest[1] * 3

    # `fmt: skip` below keeps each ffmpeg flag on the same line as its value.
    args = [
        "-f", "lavfi",
        "-i", f"testsrc2=size={width}x{height}:rate={VIDEO_FPS},"
              f"hue=h={hue_degrees}",
    ]  # fmt: skip
    if with_audio:
        args += [
            "-f", "lavfi",
            "-i", f"sine=frequency={tone_hz}:sample_rate=44100",
            "-map", "0:v", "-map", "1:a",
            "-c:a", "aac", "-b:a", "64k",
        ]  # fmt: skip
    else:
        args += ["-map", "0:v"]
    args += [
        "-t", str(duration_seconds),
        "-c:v", "libx264", "-preset", "ultrafast",
        "-profile:v", "baseline", "-level:v", "3.0", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart",
        "-metadata", f"title={label}",
        "-f", "mp4", str(path),
    ]  # fmt: skip
    try:
        await run_ffmpeg(args)
    except FFmpegFailed as exc:
        raise MockMediaError(str(exc)) from exc
