"""What a media file holds, read from `ffmpeg -i`.

The imageio-ffmpeg wheel has no ffprobe, so this parses the stream summary `ffmpeg -i`
prints. PyAV would read the same fields from an API, but it is another 30-60 MB wheel
carrying its own FFmpeg libraries, a different build from the binary that renders: a file
one of them opens might not open in the other. The handful of fields assembly needs
(container, duration, codec, size, frame rate, pixel format, audio layout) are stable in
that summary, and the parser is a pure function tested on ffmpeg's own output.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from backend.mv.assembly.ffmpeg import FFmpegFailed, run_ffmpeg

PROBE_TIMEOUT_SECONDS = 30.0
SUMMARY_BYTES = 64 * 1024
"""`ffmpeg -i` prints the summary and nothing else; long tags (lyrics) make it a few KiB."""

CHANNELS_BY_LAYOUT = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "7.1": 8}
_INPUT = re.compile(r"^Input #0, (?P<formats>.+), from ")
_DURATION = re.compile(r"^\s+Duration: (?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)")
_STREAM = re.compile(r"^\s+Stream #0:\d+\S*: (?P<kind>Video|Audio): (?P<rest>.*)$")
_SIZE = re.compile(r"^(?P<width>\d+)x(?P<height>\d+)")
_ROTATION = re.compile(r"rotation of (?P<degrees>-?[\d.]+) degrees")
_PIX_FMT = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?:\(.*\))?$")


@dataclass(frozen=True)
class VideoStream:
    codec: str
    width: int
    """As displayed: a clip rotated by 90° has its coded width and height swapped."""
    height: int
    fps: str | None
    """As ffmpeg prints it (`24`, `29.97`, `12.50`)."""
    pix_fmt: str | None


@dataclass(frozen=True)
class AudioStream:
    codec: str
    sample_rate_hz: int
    channels: int
    layout: str


@dataclass(frozen=True)
class MediaProbe:
    formats: tuple[str, ...]
    """The demuxer's names (`mov`, `mp4`, `m4a`, … for an MP4)."""
    duration_seconds: float | None
    video: VideoStream | None
    """The first video stream; cover art (an attached picture) does not count."""
    audio: AudioStream | None
    """The first audio stream."""


def _top_level_fields(text: str) -> list[str]:
    """`h264 (High), yuv420p(tv, bt709), 1280x720` → three fields: commas inside
    parentheses do not split."""
    fields, depth, start = [], 0, 0
    for index, character in enumerate(text):
        if character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
        elif character == "," and depth == 0:
            fields.append(text[start:index].strip())
            start = index + 1
    fields.append(text[start:].strip())
    return fields


def _video_stream(rest: str) -> VideoStream | None:
    fields = _top_level_fields(rest)
    size = next((match for field in fields if (match := _SIZE.match(field))), None)
    if size is None:
        return None
    fps = next((field.removesuffix(" fps") for field in fields if field.endswith(" fps")), None)
    pix_fmt = _PIX_FMT.match(fields[1]) if len(fields) > 1 else None
    return VideoStream(
        codec=fields[0].split()[0],
        width=int(size["width"]),
        height=int(size["height"]),
        fps=fps,
        pix_fmt=pix_fmt["name"] if pix_fmt and not _SIZE.match(fields[1]) else None,
    )


def _audio_stream(rest: str) -> AudioStream | None:
    fields = _top_level_fields(rest)
    rate_index = next((i for i, field in enumerate(fields) if field.endswith(" Hz")), None)
    if rate_index is None or rate_index + 1 >= len(fields):
        return None
    layout = fields[rate_index + 1]
    channels = CHANNELS_BY_LAYOUT.get(layout.split("(")[0])
    if channels is None:
        counted = re.match(r"^(\d+) channels", layout)
        channels = int(counted[1]) if counted else 0
    return AudioStream(
        codec=fields[0].split()[0],
        sample_rate_hz=int(fields[rate_index].removesuffix(" Hz")),
        channels=channels,
        layout=layout,
    )


def parse_probe(text: str) -> MediaProbe | None:
    """The summary `ffmpeg -i` wrote to stderr, or None when ffmpeg could not open the file."""
    formats: tuple[str, ...] | None = None
    duration = None
    video = audio = None
    rotated = False
    in_first_video = False
    for line in text.splitlines():
        if match := _INPUT.match(line):
            formats = tuple(match["formats"].split(","))
        elif match := _DURATION.match(line):
            duration = int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])
        elif match := _STREAM.match(line):
            in_first_video = False
            if match["kind"] == "Video" and video is None and "(attached pic)" not in line:
                video = _video_stream(match["rest"])
                in_first_video = video is not None
            elif match["kind"] == "Audio" and audio is None:
                audio = _audio_stream(match["rest"])
        elif in_first_video and (match := _ROTATION.search(line)):
            rotated = abs(round(float(match["degrees"]))) % 180 == 90
    if formats is None:
        return None
    if video is not None and rotated:
        video = VideoStream(video.codec, video.height, video.width, video.fps, video.pix_fmt)
    return MediaProbe(formats=formats, duration_seconds=duration, video=video, audio=audio)


async def probe_media(path: Path) -> MediaProbe | None:
    """What `path` holds, or None when ffmpeg cannot open it as media. (`ffmpeg -i` with no
    output always exits 1: the summary is what counts.)"""
    run = await run_ffmpeg(
        ["-i", str(path)],
        timeout_seconds=PROBE_TIMEOUT_SECONDS,
        loglevel="info",
        check=False,
        keep_stderr_bytes=SUMMARY_BYTES,
    )
    return parse_probe(run.stderr_tail)


async def decoded_audio_seconds(path: Path, *, timeout_seconds: float) -> float | None:
    """Decode the first audio stream to the end; its length in seconds, or None when the
    decoder hits an error on the way (a truncated or corrupt file)."""
    try:
        run = await run_ffmpeg(
            ["-xerror", "-i", str(path), "-map", "0:a:0", "-f", "null", "-"],
            timeout_seconds=timeout_seconds,
        )
    except FFmpegFailed:
        return None
    return run.out_time_seconds
