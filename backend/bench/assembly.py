"""Section 7, assembly: a music video rendered through the service beside ffmpeg alone.

The clips (moving test patterns with a tone, so the encoder has real work) are made with
the real ffmpeg and placed in the server's store as a video backend leaves them; the song
is uploaded through `upload_audio`. Then, with the render cap at its default of 1:

- the crossfaded render with the song through `assemble_video`;
- ffmpeg alone on the same command, built by the service's own `prepare_render`, so the
  ratio of the two is what the service adds around ffmpeg (neither run shares the two
  cores with a sampler);
- the same render again with `/health` sampled and the RSS of the server and its children
  (ffmpeg) followed throughout;
- the stream-copy path on the same clips (cut, their own sound, no fade), through the
  service and alone.
"""

import logging
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from backend.bench.probes import HealthSampler, RssSampler, rounded
from backend.bench.processes import Stack
from backend.mv.assembly.ffmpeg import ffmpeg_exe
from backend.mv.assembly.music_video import AssembleVideoRequest, prepare_render
from backend.mv.storage.local import LocalStore
from backend.testing.media_makers import make_clip, make_song, store_clip

logger = logging.getLogger("backend.bench")

SONG_TONES = [(0.0, 440.0), (30.0, 550.0), (60.0, 660.0)]
TRANSITION_SECONDS = 0.5
RENDER_TIMEOUT_SECONDS = 900.0


def _make_media(
    folder: Path, output_dir: Path, clips: int, seconds: float, size: tuple[int, int], fps: int
) -> tuple[list[str], Path]:
    """The clips, stored in the server's store; and the song, a file to upload."""
    video_ids = [
        store_clip(
            output_dir,
            make_clip(
                folder / f"clip{i}.mp4",
                size=size,
                fps=fps,
                seconds=seconds,
                pattern=True,
                tone_hz=300 + 20 * i,
            ),
        )
        for i in range(clips)
    ]
    song = make_song(folder / "song.mp3", SONG_TONES, seconds=clips * seconds + 5)
    return video_ids, song


async def _assemble(
    client: httpx.AsyncClient, stack: Stack, body: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = await client.post(f"{stack.server_url}/api/mv/assemble_video", json=body)
    wall = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"assemble_video answered {response.status_code}: {response.text}")
    return wall, response.json()


async def _ffmpeg_alone(body: dict[str, Any], stack: Stack, output: Path) -> float:
    """Wall seconds of ffmpeg running the command the service would, with nothing around it."""
    prepared = await prepare_render(AssembleVideoRequest(**body), LocalStore(stack.output_dir))
    args, stdin_data = prepared.command(output)
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-y", "-loglevel", "error", *args]
    started = time.perf_counter()
    await anyio.to_thread.run_sync(
        lambda: subprocess.run(command, input=stdin_data, check=True, capture_output=True)
    )
    return time.perf_counter() - started


def _speed(output_seconds: float, wall: float) -> float | None:
    return rounded(output_seconds / wall, 2) if wall > 0 else None


async def assembly_speed(
    stack: Stack,
    *,
    clips: int,
    clip_seconds: float,
    size: tuple[int, int],
    fps: int,
    health_interval_seconds: float,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mv-bench-assembly-") as scratch:
        folder = Path(scratch)
        logger.info("assembly: making %d clips of %g s at %dx%d", clips, clip_seconds, *size)
        video_ids, song = await anyio.to_thread.run_sync(
            _make_media, folder, stack.output_dir, clips, clip_seconds, size, fps
        )
        async with httpx.AsyncClient(timeout=RENDER_TIMEOUT_SECONDS) as client:
            with song.open("rb") as handle:
                uploaded = await client.post(
                    f"{stack.server_url}/api/mv/upload_audio", files={"file": handle}
                )
            uploaded.raise_for_status()
            encode_body = {
                "video_ids": video_ids,
                "audio_id": uploaded.json()["audio_id"],
                "transition": "crossfade",
                "transition_seconds": TRANSITION_SECONDS,
            }
            copy_body = {"video_ids": video_ids, "fade_out_seconds": 0}

            logger.info("assembly: crossfaded render with a song through the service")
            encode_wall, encoded = await _assemble(client, stack, encode_body)
            logger.info("assembly: the same command, ffmpeg alone")
            alone_wall = await _ffmpeg_alone(encode_body, stack, folder / "alone.mp4")
            logger.info("assembly: the render again, with /health and RSS sampled")
            with (
                HealthSampler(stack.server_url, health_interval_seconds) as health,
                RssSampler(stack.server_pid) as memory,
            ):
                sampled_wall, _ = await _assemble(client, stack, encode_body)
            logger.info("assembly: stream copy, through the service and alone")
            copy_wall, copied = await _assemble(client, stack, copy_body)
            copy_alone_wall = await _ffmpeg_alone(copy_body, stack, folder / "copy.mp4")
    seconds = encoded["metadata"]["duration_seconds"]
    copy_seconds = copied["metadata"]["duration_seconds"]
    service_speed = _speed(seconds, encode_wall)
    alone_speed = _speed(seconds, alone_wall)
    return {
        "clips": clips,
        "clip_seconds": clip_seconds,
        "size": f"{size[0]}x{size[1]}",
        "fps": fps,
        "requests": 2,
        "succeeded": int(encoded["metadata"]["render"] == "encode")
        + int(copied["metadata"]["render"] == "stream_copy"),
        "output_seconds": seconds,
        "service_wall_seconds": rounded(encode_wall),
        "service_output_seconds_per_second": service_speed,
        "ffmpeg_alone_wall_seconds": rounded(alone_wall),
        "ffmpeg_alone_output_seconds_per_second": alone_speed,
        "service_over_ffmpeg_alone": rounded(service_speed / alone_speed, 3)
        if service_speed and alone_speed
        else None,
        "queue_wait_seconds": encoded["metadata"]["queue_wait_seconds"],
        "sampled_wall_seconds": rounded(sampled_wall),
        "stream_copy_wall_seconds": rounded(copy_wall),
        "stream_copy_x_realtime": _speed(copy_seconds, copy_wall),
        "stream_copy_alone_x_realtime": _speed(copy_seconds, copy_alone_wall),
        "health": health.summary(),
        "memory": memory.summary(),
    }
