"""`assemble_video` called as the job engine will call it (no app): progress, a given id,
cancellation and the deadline, with the real ffmpeg; and the pure pieces it is made of."""

import asyncio
from fractions import Fraction
from pathlib import Path
from typing import Any

import psutil
import pytest

from backend.mv.assembly.ffmpeg import progress_seconds
from backend.mv.assembly.graph import ClipInput, RenderPlan, frame_rate, whole_frames
from backend.mv.assembly.music_video import AssembleVideoRequest, assemble_video
from backend.mv.assembly.probe import parse_probe
from backend.mv.errors import GenerationTimeout
from backend.mv.limiter import AdmittedByQueue
from backend.mv.storage.local import LocalStore
from backend.testing.media_makers import make_clip, store_clip


def assemble(store: LocalStore, request: AssembleVideoRequest, **options: Any) -> Any:
    return assemble_video(
        request,
        store=store,
        limiter=AdmittedByQueue(0.0),
        render_timeout_seconds=options.pop("render_timeout_seconds", 60),
        min_free_bytes=0,
        video_url_for=lambda video_id: f"/videos/{video_id}",
        **options,
    )


@pytest.fixture
def long_clips(tmp_path: Path) -> tuple[LocalStore, list[str]]:
    """Two moving 1280x720 clips that take ffmpeg a few seconds to join with a crossfade."""
    root = tmp_path / "outputs"
    clips = [
        store_clip(
            root, make_clip(tmp_path / f"{i}.mp4", size=(1280, 720), seconds=6, pattern=True)
        )
        for i in range(2)
    ]
    return LocalStore(root), clips


def ffmpeg_children() -> list[psutil.Process]:
    return [child for child in psutil.Process().children() if "ffmpeg" in child.name()]


def leftovers(root: Path) -> list[Path]:
    return list(root.glob(".staging/*.tmp"))


async def test_progress_is_reported_as_rendering_percents_up_to_100(
    long_clips: tuple[LocalStore, list[str]],
) -> None:
    store, clips = long_clips
    reports: list[tuple[str, int | None]] = []

    async def on_progress(stage: str, percent: int | None, _detail: dict | None) -> None:
        reports.append((stage, percent))

    request = AssembleVideoRequest(video_ids=clips, transition="crossfade")
    await assemble(store, request, on_progress=on_progress)
    percents = [percent for _, percent in reports]
    assert {stage for stage, _ in reports} == {"rendering"}
    assert percents == sorted(percents)
    assert len(percents) > 3
    assert percents[-1] == 100


async def test_a_given_video_id_is_the_id_produced_and_asking_again_returns_it(
    long_clips: tuple[LocalStore, list[str]],
) -> None:
    store, clips = long_clips
    video_id = "5a1c2e3f-4b5d-4e6f-8a7b-9c0d1e2f3a4b"
    # A previous attempt died after writing the file but before its sidecar.
    leftover = store.local_path(f"videos/{video_id}.mp4")
    leftover.write_bytes(b"half a video")
    request = AssembleVideoRequest(video_ids=clips[:1], fade_out_seconds=0.5)
    first = await assemble(store, request, video_id=video_id)
    assert first.video_id == video_id
    assert leftover.read_bytes() != b"half a video"
    again = await assemble(store, request, video_id=video_id)
    assert again == first


async def test_a_cancelled_render_kills_ffmpeg_and_leaves_no_file(
    long_clips: tuple[LocalStore, list[str]],
) -> None:
    store, clips = long_clips
    started = asyncio.Event()

    async def on_progress(_stage: str, percent: int | None, _detail: dict | None) -> None:
        if percent and percent > 0:
            started.set()

    request = AssembleVideoRequest(video_ids=clips, transition="crossfade")
    render = asyncio.create_task(assemble(store, request, on_progress=on_progress))
    await asyncio.wait_for(started.wait(), 30)
    assert ffmpeg_children()
    render.cancel()
    with pytest.raises(asyncio.CancelledError):
        await render
    assert ffmpeg_children() == []
    assert leftovers(store.root) == []
    assert len(list(store.root.glob("videos/*.mp4"))) == len(clips)


async def test_a_render_past_its_deadline_is_a_504_and_leaves_no_file(
    long_clips: tuple[LocalStore, list[str]],
) -> None:
    store, clips = long_clips
    request = AssembleVideoRequest(video_ids=clips, transition="crossfade")
    with pytest.raises(GenerationTimeout):
        await assemble(store, request, render_timeout_seconds=0.5)
    assert ffmpeg_children() == []
    assert leftovers(store.root) == []
    assert len(list(store.root.glob("videos/*.mp4"))) == len(clips)


# ---- the pure pieces


PHONE_CLIP = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'phone.mp4':
  Duration: 00:01:02.50, start: 0.000000, bitrate: 9000 kb/s
  Stream #0:0[0x1](und): Video: hevc (Main) (hvc1 / 0x31637668), yuv420p(tv, bt709), 1920x1080, 8000 kb/s, 29.97 fps, 29.97 tbr, 600 tbn (default)
      Side data:
        displaymatrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, 5.1(side), fltp, 256 kb/s
"""  # noqa: E501
SONG_WITH_COVER = """Input #0, mp3, from 'song.mp3':
  Duration: 00:03:30.05, start: 0.025057, bitrate: 320 kb/s
  Stream #0:0: Audio: mp3 (mp3float), 48000 Hz, stereo, fltp, 320 kb/s
  Stream #0:1: Video: mjpeg (Baseline), yuvj420p(pc, bt470bg/unknown/unknown), 600x600, 90k tbr, 90k tbn (attached pic)
"""  # noqa: E501


def test_the_probe_reads_rotation_colour_ranges_and_channel_layouts() -> None:
    probe = parse_probe(PHONE_CLIP)
    assert probe is not None
    assert probe.duration_seconds == pytest.approx(62.5)
    assert probe.video is not None
    assert (probe.video.width, probe.video.height) == (1080, 1920)
    assert (probe.video.codec, probe.video.pix_fmt, probe.video.fps) == ("hevc", "yuv420p", "29.97")
    assert probe.audio is not None
    assert (probe.audio.sample_rate_hz, probe.audio.channels) == (44100, 6)


def test_cover_art_is_not_a_video_stream() -> None:
    probe = parse_probe(SONG_WITH_COVER)
    assert probe is not None
    assert probe.formats == ("mp3",)
    assert probe.video is None
    assert probe.audio is not None
    assert probe.audio.channels == 2


def test_what_ffmpeg_cannot_open_has_no_probe() -> None:
    assert parse_probe("song.mp3: Invalid data found when processing input\n") is None


def test_frame_rates_and_lengths_are_exact_fractions() -> None:
    assert frame_rate("29.97") == Fraction(30000, 1001)
    assert frame_rate("12.50") == Fraction(25, 2)
    assert whole_frames(8.0, Fraction(24)) == 192
    clips = tuple(ClipInput(Path(f"{i}.mp4"), 192, False) for i in range(12))
    plan = RenderPlan(
        clips=clips,
        width=1280,
        height=720,
        fps=Fraction(24),
        transition="crossfade",
        transition_frames=12,
        fade_out_seconds=1.0,
        audio_mode="song",
        clip_audio_volume=0.3,
        song=None,
    )
    assert plan.duration_seconds == 12 * 8 - 11 * 0.5


def test_progress_lines_give_the_output_time() -> None:
    assert progress_seconds("out_time_us=1500000\n") == 1.5
    assert progress_seconds("out_time_us=N/A") is None
    assert progress_seconds("frame=12") is None
