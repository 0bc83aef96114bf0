"""Mock media must open in real decoders: Pillow, a hand-rolled PNG parser and ffmpeg itself."""

import asyncio
import re
import struct
import subprocess
import time
import zlib
from pathlib import Path

import psutil
import pytest
from PIL import Image

from backend.mv.providers.mock.media import (
    VIDEO_FPS,
    MockMediaError,
    write_mock_image,
    write_mock_video,
)
from backend.testing.media_checks import (
    FFMPEG,
    decode_whole_file,
    ffmpeg_stream_info,
    png_chunks,
)

IMAGE_RATIOS = {"1:1": 1 / 1, "9:16": 9 / 16, "16:9": 16 / 9, "3:4": 3 / 4, "4:3": 4 / 3}


def decoded_frame_checksums(path: Path) -> list[str]:
    """Decode every video frame, failing on any decoder error; one pixel checksum per frame."""
    result = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [line.rsplit(",", 1)[-1] for line in result.stdout.splitlines() if line[:1] != "#"]


def top_level_mp4_boxes(data: bytes) -> list[bytes]:
    boxes = []
    offset = 0
    while offset < len(data):
        size, box_type = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
        assert size >= 8, f"bad box size at {offset}"
        boxes.append(box_type)
        offset += size
    assert offset == len(data)
    return boxes


@pytest.mark.parametrize("aspect_ratio", list(IMAGE_RATIOS))
@pytest.mark.parametrize(("image_format", "pillow_format"), [("png", "PNG"), ("jpg", "JPEG")])
async def test_image_opens_in_pillow_with_the_requested_format_and_aspect_ratio(
    tmp_path: Path, aspect_ratio: str, image_format: str, pillow_format: str
) -> None:
    path = tmp_path / "image.tmp"
    await write_mock_image(path, aspect_ratio=aspect_ratio, image_format=image_format, label="x")

    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == pillow_format
        width, height = image.size
        image.load()
    assert max(width, height) >= 256
    assert width / height == pytest.approx(IMAGE_RATIOS[aspect_ratio], rel=0.01)


async def test_png_has_valid_chunks_and_idat_that_inflates_to_the_pixel_data(
    tmp_path: Path,
) -> None:
    path = tmp_path / "image.tmp"
    await write_mock_image(path, aspect_ratio="3:4", image_format="png", label="scene one")

    chunks = png_chunks(path.read_bytes())
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (width, height) == (384, 512)
    assert (bit_depth, colour_type, interlace) == (8, 2, 0)  # 8-bit RGB, not interlaced
    pixels = zlib.decompress(b"".join(payload for kind, payload in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + width * 3)  # one filter byte per row


@pytest.mark.parametrize("image_format", ["png", "jpg"])
async def test_different_labels_give_different_images(tmp_path: Path, image_format: str) -> None:
    first, second = tmp_path / "first.tmp", tmp_path / "second.tmp"
    await write_mock_image(first, aspect_ratio="1:1", image_format=image_format, label="a cat")
    await write_mock_image(second, aspect_ratio="1:1", image_format=image_format, label="a dog")

    assert first.read_bytes() != second.read_bytes()


async def test_image_label_outside_latin1_still_renders(tmp_path: Path) -> None:
    path = tmp_path / "image.tmp"
    await write_mock_image(path, aspect_ratio="1:1", image_format="png", label="猫 🎵 " * 40)

    with Image.open(path) as image:
        image.verify()


@pytest.mark.parametrize(("aspect_ratio", "image_format"), [("2:1", "png"), ("1:1", "webp")])
async def test_image_rejects_unsupported_arguments_without_writing(
    tmp_path: Path, aspect_ratio: str, image_format: str
) -> None:
    path = tmp_path / "image.tmp"
    with pytest.raises(ValueError, match="unsupported"):
        await write_mock_image(
            path, aspect_ratio=aspect_ratio, image_format=image_format, label="x"
        )
    assert not path.exists()


@pytest.mark.parametrize(("aspect_ratio", "resolution"), [("16:9", "320x180"), ("9:16", "180x320")])
@pytest.mark.parametrize("duration_seconds", [4, 6, 8])
@pytest.mark.parametrize("with_audio", [True, False])
async def test_video_is_browser_playable_h264_of_exact_duration(
    tmp_path: Path, aspect_ratio: str, resolution: str, duration_seconds: int, with_audio: bool
) -> None:
    path = tmp_path / "clip.tmp"
    await write_mock_video(
        path,
        aspect_ratio=aspect_ratio,
        duration_seconds=duration_seconds,
        with_audio=with_audio,
        label="scene",
    )

    decode_whole_file(path)
    assert len(decoded_frame_checksums(path)) == duration_seconds * VIDEO_FPS
    info = ffmpeg_stream_info(path)
    assert f"Duration: 00:00:{duration_seconds:02d}.0" in info
    video_lines = [line for line in info.splitlines() if "Video:" in line]
    assert len(video_lines) == 1
    assert "Video: h264 (Constrained Baseline)" in video_lines[0]
    assert "yuv420p" in video_lines[0]
    assert re.search(rf"\b{resolution}\b", video_lines[0])
    audio_lines = [line for line in info.splitlines() if "Audio:" in line]
    if with_audio:
        assert len(audio_lines) == 1
        assert "Audio: aac (LC)" in audio_lines[0]
    else:
        assert audio_lines == []


async def test_video_moov_box_precedes_media_data_for_progressive_playback(
    tmp_path: Path,
) -> None:
    path = tmp_path / "clip.tmp"
    await write_mock_video(
        path, aspect_ratio="16:9", duration_seconds=4, with_audio=True, label="scene"
    )

    boxes = top_level_mp4_boxes(path.read_bytes())
    assert boxes[0] == b"ftyp"
    assert boxes.index(b"moov") < boxes.index(b"mdat")


async def test_h264_config_is_constrained_baseline_level_3_for_every_browser(
    tmp_path: Path,
) -> None:
    path = tmp_path / "clip.tmp"
    await write_mock_video(
        path, aspect_ratio="9:16", duration_seconds=4, with_audio=False, label="scene"
    )

    data = path.read_bytes()
    avc_config = data[data.index(b"avcC") + 4 :]  # AVCDecoderConfigurationRecord
    profile_idc, constraint_flags, level_idc = avc_config[1], avc_config[2], avc_config[3]
    assert profile_idc == 66  # Baseline
    assert constraint_flags & 0x40  # constraint_set1: Constrained Baseline
    assert level_idc == 30


async def test_different_labels_give_different_pictures(tmp_path: Path) -> None:
    first, second = tmp_path / "first.tmp", tmp_path / "second.tmp"
    for path, label in [(first, "a cat"), (second, "a dog")]:
        await write_mock_video(
            path, aspect_ratio="9:16", duration_seconds=4, with_audio=False, label=label
        )

    assert decoded_frame_checksums(first) != decoded_frame_checksums(second)


async def test_video_encoding_leaves_the_event_loop_free(tmp_path: Path) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    started = time.perf_counter()
    await write_mock_video(
        tmp_path / "clip.tmp", aspect_ratio="16:9", duration_seconds=8, with_audio=True, label="x"
    )
    elapsed = time.perf_counter() - started
    ticker.cancel()

    assert elapsed < 5
    assert ticks >= 3, f"only {ticks} ticks in {elapsed:.3f} s"


async def test_cancelled_encode_kills_ffmpeg(tmp_path: Path) -> None:
    def running_ffmpegs() -> list[psutil.Process]:
        children = psutil.Process().children(recursive=True)
        return [child for child in children if "ffmpeg" in child.name()]

    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await write_mock_video(  # an hour of video: far longer than the timeout
                tmp_path / "clip.tmp",
                aspect_ratio="16:9",
                duration_seconds=3600,
                with_audio=True,
                label="x",
            )

    assert time.perf_counter() - started < 5
    assert running_ffmpegs() == []


async def test_ffmpeg_failure_raises_with_its_stderr(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "clip.tmp"
    with pytest.raises(MockMediaError, match="No such file or directory"):
        await write_mock_video(
            path, aspect_ratio="16:9", duration_seconds=4, with_audio=False, label="x"
        )


@pytest.mark.parametrize(
    ("aspect_ratio", "duration_seconds"), [("1:1", 4), ("16:9", 0), ("9:16", -1)]
)
async def test_video_rejects_unsupported_arguments_without_running_ffmpeg(
    tmp_path: Path, aspect_ratio: str, duration_seconds: int
) -> None:
    path = tmp_path / "clip.tmp"
    with pytest.raises(ValueError, match=r"aspect_ratio|duration_seconds"):
        await write_mock_video(
            path,
            aspect_ratio=aspect_ratio,
            duration_seconds=duration_seconds,
            with_audio=False,
            label="x",
        )
    assert not path.exists()
