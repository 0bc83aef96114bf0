"""Real-decoder checks on media files, shared by the tests: ffmpeg for clips, a strict PNG
chunk walk for images."""

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
