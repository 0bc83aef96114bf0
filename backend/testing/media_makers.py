"""Test and benchmark media made with the real ffmpeg: clips of a chosen size, frame rate,
colour and tone, songs of known tones, and clips placed in a store as a provider would."""

import hashlib
import json
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

from backend.testing.media_checks import FFMPEG

SAMPLE_RATE_HZ = 48_000


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *args], check=True)


def make_clip(
    path: Path,
    *,
    size: tuple[int, int] = (640, 360),
    fps: int = 24,
    seconds: float = 2.0,
    color: str = "red",
    tone_hz: float | None = None,
    pattern: bool = False,
) -> Path:
    """An H.264 yuv420p MP4 of one colour (or a moving test pattern), with an AAC sine
    tone when `tone_hz` is given and no audio stream otherwise."""
    width, height = size
    source = (
        f"testsrc2=size={width}x{height}:rate={fps}"
        if pattern
        else f"color=c={color}:size={width}x{height}:rate={fps}"
    )
    args = ["-f", "lavfi", "-i", source]
    if tone_hz is not None:
        args += ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate={SAMPLE_RATE_HZ}"]
        args += ["-c:a", "aac", "-b:a", "96k"]
    args += ["-t", f"{seconds}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    _ffmpeg(*args, "-movflags", "+faststart", str(path))
    return path


def make_song(path: Path, tones: Sequence[tuple[float, float]], *, seconds: float) -> Path:
    """A song of sine tones, `tones` being `(start_seconds, frequency_hz)` in order: each
    plays from its start to the next one's. The format follows `path`'s suffix."""
    expression = str(tones[0][1])
    for start, frequency in tones[1:]:
        expression = f"if(gte(t,{start}),{frequency},{expression})"
    source = f"aevalsrc='0.5*sin(2*PI*({expression})*t)':s={SAMPLE_RATE_HZ}:d={seconds}"
    _ffmpeg("-f", "lavfi", "-i", source, "-ac", "2", str(path))
    return path


def store_clip(output_root: Path, clip: Path) -> str:
    """Put `clip` in the store under `output_root` as a delivered clip (file and sidecar),
    the way a video backend leaves it; returns its video_id."""
    video_id = str(uuid.uuid4())
    folder = output_root / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    data = clip.read_bytes()
    (folder / f"{video_id}.mp4").write_bytes(data)
    sidecar = {
        "video_id": video_id,
        "file_name": f"{video_id}.mp4",
        "created_at": "2026-01-01T00:00:00Z",
        "file_size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    (folder / f"{video_id}.json").write_text(json.dumps(sidecar))
    return video_id
