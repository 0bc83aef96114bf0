"""ffmpeg as an asyncio subprocess: progress from `-progress pipe:1`, stderr kept for the log,
killed on cancellation and at the deadline.

The binary is the static build the imageio-ffmpeg wheel ships (libx264, AAC, every demuxer
the uploads need), so nothing has to be installed on the host. Nothing here blocks the event
loop: both pipes are read by the loop as data arrives.
"""

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import imageio_ffmpeg

from backend.mv.errors import GenerationTimeout

logger = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 4000
"""How much of ffmpeg's stderr is kept for the log: its last lines say why it failed."""

ProgressSink = Callable[[float], Awaitable[None]]
"""Called with the seconds of output written so far (ffmpeg's `out_time`)."""


class FFmpegFailed(RuntimeError):
    """ffmpeg exited with a non-zero status; the message ends with the tail of its stderr,
    for the log (it may name server paths, so it is not for clients)."""

    def __init__(self, returncode: int, stderr_tail: str) -> None:
        super().__init__(f"ffmpeg exited with status {returncode}: {stderr_tail}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail


@dataclass(frozen=True)
class FFmpegRun:
    returncode: int
    out_time_seconds: float
    """The last `out_time` ffmpeg reported: how much output it wrote (or decoded)."""
    stderr_tail: str


@functools.cache
def ffmpeg_exe() -> str:
    """The static ffmpeg bundled with imageio-ffmpeg; looked up once."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def progress_seconds(line: str) -> float | None:
    """The output time in a `-progress` line (`out_time_us=…`, microseconds), else None.

    `out_time_ms` is microseconds too (an old misnomer) and `out_time` the same as text;
    `N/A` appears before the first frame.
    """
    name, _, value = line.strip().partition("=")
    if name != "out_time_us" or not value.lstrip("-").isdigit():
        return None
    return max(int(value), 0) / 1_000_000


async def _read_progress(
    stream: asyncio.StreamReader, on_progress: ProgressSink | None, last: list[float]
) -> None:
    while line := await stream.readline():
        seconds = progress_seconds(line.decode("ascii", "replace"))
        if seconds is None:
            continue
        last[0] = seconds
        if on_progress is not None:
            await on_progress(seconds)


async def _keep_tail(stream: asyncio.StreamReader, tail: deque[bytes], limit: int) -> None:
    """Read stderr to the end (a full pipe would stall ffmpeg), keeping its last `limit`
    bytes."""
    kept = 0
    while chunk := await stream.read(4096):
        tail.append(chunk)
        kept += len(chunk)
        while kept - len(tail[0]) >= limit:
            kept -= len(tail.popleft())


async def _feed(stdin: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if stdin is None or data is None:
        return
    stdin.write(data)
    await stdin.drain()
    stdin.close()


async def run_ffmpeg(
    args: list[str],
    *,
    stdin_data: bytes | None = None,
    on_progress: ProgressSink | None = None,
    timeout_seconds: float | None = None,
    loglevel: str = "error",
    check: bool = True,
    keep_stderr_bytes: int = STDERR_TAIL_BYTES,
) -> FFmpegRun:
    """Run `ffmpeg -loglevel <loglevel> <args> -progress pipe:1` to the end.

    `stdin_data` is written to ffmpeg's stdin (e.g. a concat list read as `pipe:0`); the
    last `keep_stderr_bytes` of stderr are kept. Raises `FFmpegFailed` on a non-zero exit
    (unless `check` is false) and `GenerationTimeout` when
    `timeout_seconds` pass first. On any way out before ffmpeg has exited (cancellation,
    the deadline, a failing `on_progress`) ffmpeg is killed and reaped: none is left
    running. What it wrote is the caller's to remove (write into staging).
    """
    process = await asyncio.create_subprocess_exec(
        ffmpeg_exe(),
        *("-nostdin", "-hide_banner", "-y", "-loglevel", loglevel),
        *args,
        "-progress",
        "pipe:1",
        "-nostats",
        stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    tail: deque[bytes] = deque()
    last = [0.0]
    try:
        async with asyncio.timeout(timeout_seconds):
            await asyncio.gather(
                _feed(process.stdin, stdin_data),
                _read_progress(process.stdout, on_progress, last),
                _keep_tail(process.stderr, tail, keep_stderr_bytes),
            )
            returncode = await process.wait()
    except TimeoutError as exc:
        raise GenerationTimeout(
            f"The render did not finish within {timeout_seconds:g} seconds"
        ) from exc
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr_tail = b"".join(tail)[-keep_stderr_bytes:].decode("utf-8", "replace").strip()
    if check and returncode != 0:
        raise FFmpegFailed(returncode, stderr_tail)
    return FFmpegRun(returncode, last[0], stderr_tail)
