"""Real-decoder checks on media files, shared by the tests: ffmpeg for clips, a strict PNG
chunk walk for images."""

import array
import math
import re
import struct
import subprocess
import zlib
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG into (type, payload) chunks, failing on a bad signature, length or CRC."""
    assert data[:8] == PNG_SIGNATURE
    chunks = []
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunk_type = data[offset + 4 : offset + 8]
        payload = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert len(payload) == length, f"{chunk_type!r} is truncated"
        assert zlib.crc32(chunk_type + payload) == crc, f"bad CRC in {chunk_type!r}"
        chunks.append((chunk_type, payload))
        offset += 12 + length
    return chunks


def ffmpeg_stream_info(path: Path) -> str:
    """What `ffmpeg -i` says about the file (it exits 1 for want of an output; that is fine)."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False
    )
    return result.stderr


def decode_whole_file(path: Path) -> None:
    result = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def count_video_frames(path: Path) -> int:
    """How many frames the first video stream decodes to."""
    result = subprocess.run(
        [
            *(FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0"),
            *("-f", "null", "-", "-progress", "pipe:1", "-nostats"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    frames = [line for line in result.stdout.splitlines() if line.startswith("frame=")]
    return int(frames[-1].removeprefix("frame="))


def frame_rgb(path: Path, at_seconds: float) -> tuple[int, int, bytes]:
    """The frame shown at `at_seconds`: width, height and its RGB24 pixels."""
    info = ffmpeg_stream_info(path)
    size = re.search(r"Video: .*?, (\d+)x(\d+)", info)
    assert size, info
    width, height = int(size[1]), int(size[2])
    result = subprocess.run(
        [
            *(FFMPEG, "-nostdin", "-v", "error", "-ss", f"{at_seconds}", "-i", str(path)),
            *("-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"),
        ],
        capture_output=True,
        check=True,
    )
    assert len(result.stdout) == width * height * 3, "no frame at that time"
    return width, height, result.stdout


def mean_rgb(frame: tuple[int, int, bytes], box: tuple[int, int, int, int]) -> tuple[float, ...]:
    """The mean colour of the pixels in `box` (left, top, right, bottom) of a `frame_rgb`."""
    width, _, pixels = frame
    left, top, right, bottom = box
    totals = [0, 0, 0]
    for y in range(top, bottom):
        row = pixels[(y * width + left) * 3 : (y * width + right) * 3]
        for channel in range(3):
            totals[channel] += sum(row[channel::3])
    count = (right - left) * (bottom - top)
    return tuple(total / count for total in totals)


def audio_samples(path: Path, start: float, seconds: float, rate: int = 48_000) -> list[float]:
    """The sound from `start` for `seconds`, decoded to mono floats at `rate`."""
    result = subprocess.run(
        [
            *(FFMPEG, "-nostdin", "-v", "error", "-i", str(path)),
            *("-ss", f"{start}", "-t", f"{seconds}", "-map", "0:a:0", "-ac", "1"),
            *("-ar", str(rate), "-f", "f32le", "-"),
        ],
        capture_output=True,
        check=True,
    )
    return list(array.array("f", result.stdout))


def rms(samples: list[float]) -> float:
    return math.sqrt(sum(sample * sample for sample in samples) / max(len(samples), 1))


def tone_amplitude(samples: list[float], frequency_hz: float, rate: int = 48_000) -> float:
    """The amplitude of one frequency in `samples` (Goertzel): about 0.5 for a sine of
    amplitude 0.5 at that frequency, near 0 for anything else."""
    coefficient = 2 * math.cos(2 * math.pi * frequency_hz / rate)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    power = previous * previous + before * before - coefficient * previous * before
    return 2 * math.sqrt(max(power, 0.0)) / max(len(samples), 1)
