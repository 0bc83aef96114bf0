"""assemble_video end to end with the real ffmpeg: clips of mixed sizes, frame rates and
sound made in the test, a song of known tones, and the output decoded and measured."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from backend.testing.apps import make_settings, serve_app
from backend.testing.contract import assert_error_shape
from backend.testing.media_checks import (
    audio_samples,
    count_video_frames,
    decode_whole_file,
    ffmpeg_stream_info,
    frame_rgb,
    mean_rgb,
    rms,
    tone_amplitude,
)
from backend.testing.media_makers import make_clip, make_song, store_clip

ASSEMBLE = "/api/mv/assemble_video"
SONG_TONES = [(0.0, 440.0), (5.0, 660.0), (10.0, 880.0)]
"""440 Hz for the song's first 5 s, 660 Hz for the next 5, then 880 Hz."""
CLIP_TONE_HZ = 300.0


@dataclass
class Rig:
    client: httpx.AsyncClient
    root: Path
    media: Path

    def clip(self, name: str, **options: Any) -> str:
        return store_clip(self.root, make_clip(self.media / f"{name}.mp4", **options))

    async def song(self, seconds: float = 20.0, suffix: str = "mp3") -> dict[str, Any]:
        path = make_song(self.media / f"song.{suffix}", SONG_TONES, seconds=seconds)
        response = await self.client.post(
            "/api/mv/upload_audio", files={"file": (path.name, path.read_bytes())}
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def assemble(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post(ASSEMBLE, json=body)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    root, media = tmp_path / "outputs", tmp_path / "media"
    media.mkdir()
    async with serve_app(make_settings(root, mv_mock_mode=True)) as (_, client):
        yield Rig(client, root, media)


def output_of(answer: dict[str, Any]) -> Path:
    return Path(answer["video_path"])


def has_audio_stream(path: Path) -> bool:
    return "Audio:" in ffmpeg_stream_info(path)


async def test_crossfaded_mixed_clips_over_a_song_last_the_formula_and_carry_the_song(
    rig: Rig,
) -> None:
    clips = [
        rig.clip("wide", size=(640, 360), fps=24, seconds=3, color="red", tone_hz=CLIP_TONE_HZ),
        rig.clip("tall", size=(360, 640), fps=30, seconds=2, color="blue"),
        rig.clip("small", size=(320, 180), fps=25, seconds=4, color="green", tone_hz=500),
    ]
    song = await rig.song()
    answer = await rig.assemble(
        video_ids=clips,
        audio_id=song["audio_id"],
        audio_offset_seconds=5,
        transition="crossfade",
        transition_seconds=0.5,
    )
    metadata = answer["metadata"]
    expected_seconds = (3 + 2 + 4) - 2 * 0.5
    assert metadata["kind"] == "music_video"
    assert metadata["render"] == "encode"
    assert metadata["video_ids"] == clips
    assert uuid.UUID(metadata["job_id"])
    assert (metadata["width"], metadata["height"], metadata["fps"]) == (640, 360, 24)
    assert metadata["duration_seconds"] == pytest.approx(expected_seconds, abs=1 / 24)
    assert "fps" in metadata["defaults_applied"]
    assert "audio_mode" in metadata["defaults_applied"]
    assert metadata["parameters_used"]["audio_mode"] == "song"

    path = output_of(answer)
    decode_whole_file(path)
    assert abs(count_video_frames(path) - expected_seconds * 24) <= 1
    info = ffmpeg_stream_info(path)
    assert "h264" in info
    assert "yuv420p" in info
    assert "640x360" in info
    assert "48000 Hz, stereo" in info
    # From offset 5 s the song plays 660 Hz for 5 s, then 880 Hz: the clips' own tones
    # (300 and 500 Hz) are not in song mode.
    early = audio_samples(path, 1.0, 0.5)
    late = audio_samples(path, 6.0, 0.5)
    assert tone_amplitude(early, 660) > 0.3
    assert tone_amplitude(early, 440) < 0.05
    assert tone_amplitude(early, CLIP_TONE_HZ) < 0.05
    assert tone_amplitude(late, 880) > 0.3


async def test_a_9_16_clip_is_letterboxed_in_a_16_9_output_never_stretched(rig: Rig) -> None:
    clips = [
        rig.clip("wide", size=(640, 360), color="red"),
        rig.clip("tall", size=(360, 640), color="blue"),
    ]
    answer = await rig.assemble(video_ids=clips, fade_out_seconds=0)
    frame = frame_rgb(output_of(answer), 3.0)
    assert frame[:2] == (640, 360)
    # 360x640 fits 640x360 as about 202x360, centred: black bars left and right.
    red, _, blue = mean_rgb(frame, (300, 100, 340, 260))
    assert blue > 200
    assert red < 40
    for bar in ((0, 0, 200, 360), (440, 0, 640, 360)):
        assert max(mean_rgb(frame, bar)) < 20, bar


async def test_a_frame_inside_a_crossfade_mixes_both_clips(rig: Rig) -> None:
    clips = [
        rig.clip("red", color="red", seconds=2),
        rig.clip("blue", color="blue", seconds=2),
    ]
    answer = await rig.assemble(
        video_ids=clips, transition="crossfade", transition_seconds=1.0, fade_out_seconds=0
    )
    path = output_of(answer)
    assert answer["metadata"]["duration_seconds"] == pytest.approx(3.0)
    before = mean_rgb(frame_rgb(path, 0.5), (0, 0, 640, 360))
    middle = mean_rgb(frame_rgb(path, 1.5), (0, 0, 640, 360))
    after = mean_rgb(frame_rgb(path, 2.5), (0, 0, 640, 360))
    assert before[0] > 200
    assert before[2] < 30
    assert after[2] > 200
    assert after[0] < 30
    assert 70 < middle[0] < 185
    assert 70 < middle[2] < 185


async def test_the_end_fades_to_black_and_to_silence(rig: Rig) -> None:
    clips = [rig.clip("white", color="white", seconds=3, tone_hz=CLIP_TONE_HZ)]
    answer = await rig.assemble(video_ids=clips, fade_out_seconds=1.0)
    path = output_of(answer)
    bright = mean_rgb(frame_rgb(path, 1.0), (0, 0, 640, 360))
    fading = mean_rgb(frame_rgb(path, 2.5), (0, 0, 640, 360))
    last = mean_rgb(frame_rgb(path, 3 - 1 / 24), (0, 0, 640, 360))
    assert min(bright) > 200
    assert 60 < fading[0] < 190
    assert max(last) < 25
    assert rms(audio_samples(path, 1.0, 0.3)) > 0.05
    assert rms(audio_samples(path, 2.95, 0.05)) < 0.02


async def test_sound_follows_the_clips_without_a_song(rig: Rig) -> None:
    loud = rig.clip("loud", seconds=2, tone_hz=CLIP_TONE_HZ)
    silent = rig.clip("silent", seconds=2, size=(320, 180), fps=12)
    both = await rig.assemble(video_ids=[loud, silent], fade_out_seconds=0)
    path = output_of(both)
    assert both["metadata"]["has_audio"] is True
    assert tone_amplitude(audio_samples(path, 0.5, 0.5), CLIP_TONE_HZ) > 0.05
    assert rms(audio_samples(path, 2.5, 0.5)) < 0.001

    quiet = await rig.assemble(video_ids=[silent, silent], fade_out_seconds=0.5)
    assert quiet["metadata"]["has_audio"] is False
    assert not has_audio_stream(output_of(quiet))


async def test_mix_mode_lays_the_clips_sound_under_the_song(rig: Rig) -> None:
    clips = [rig.clip("loud", seconds=3, tone_hz=CLIP_TONE_HZ)]
    song = await rig.song()
    answer = await rig.assemble(
        video_ids=clips, audio_id=song["audio_id"], audio_mode="mix", clip_audio_volume=0.5
    )
    samples = audio_samples(output_of(answer), 0.5, 1.0)
    song_level = tone_amplitude(samples, 440)
    clip_level = tone_amplitude(samples, CLIP_TONE_HZ)
    assert song_level > 0.3
    assert 0.05 < clip_level < song_level


async def test_a_song_shorter_than_the_video_ends_in_silence(rig: Rig) -> None:
    clips = [rig.clip("long", seconds=4)]
    song = await rig.song(seconds=2.0, suffix="wav")
    answer = await rig.assemble(video_ids=clips, audio_id=song["audio_id"], fade_out_seconds=0)
    path = output_of(answer)
    assert answer["metadata"]["has_audio"] is True
    assert tone_amplitude(audio_samples(path, 1.0, 0.5), 440) > 0.3
    assert rms(audio_samples(path, 3.0, 0.5)) < 0.001
    assert count_video_frames(path) == 4 * 24


async def test_an_assembled_video_is_served_like_a_clip_and_joins_later_assemblies(
    rig: Rig,
) -> None:
    clip = rig.clip("one", seconds=2)
    first = await rig.assemble(video_ids=[clip, clip])
    served = await rig.client.get(first["video_url"], headers={"Range": "bytes=0-99"})
    assert served.status_code == 206
    assert served.content == output_of(first).read_bytes()[:100]
    assert served.headers["etag"] == f'"{first["metadata"]["sha256"]}"'
    info = (await rig.client.get(f"{first['video_url']}/info")).json()
    assert info["metadata"]["kind"] == "music_video"
    assert info["file_size_bytes"] == first["metadata"]["file_size_bytes"]
    again = await rig.assemble(video_ids=[first["video_id"], clip])
    assert again["metadata"]["duration_seconds"] == pytest.approx(6.0)


# ---- the stream-copy path, exactly when the contract says


SAME = {"size": (320, 180), "fps": 12, "seconds": 2, "tone_hz": CLIP_TONE_HZ}


async def test_identical_clips_cut_with_no_fade_are_joined_without_re_encoding(rig: Rig) -> None:
    clips = [rig.clip(f"same{i}", **SAME, color=color) for i, color in enumerate(["red", "blue"])]
    answer = await rig.assemble(video_ids=clips, fade_out_seconds=0)
    path = output_of(answer)
    assert answer["metadata"]["render"] == "stream_copy"
    decode_whole_file(path)
    assert count_video_frames(path) == 48
    assert has_audio_stream(path)
    # Stream copy keeps the clips' own encoding: ultrafast x264 leaves no B-frames.
    assert "Constrained Baseline" in ffmpeg_stream_info(path)


@pytest.mark.parametrize(
    ("change", "clip_options"),
    [
        pytest.param({"transition": "crossfade"}, {}, id="crossfade"),
        pytest.param({"fade_out_seconds": 0.5}, {}, id="fade"),
        pytest.param({"audio_mode": "song"}, {}, id="song"),
        pytest.param({"width": 640, "height": 360}, {}, id="other-size"),
        pytest.param({"fps": 24}, {}, id="other-fps"),
        pytest.param({}, {"size": (640, 360)}, id="clip-of-another-size"),
        pytest.param({}, {"fps": 24}, id="clip-of-another-fps"),
        pytest.param({}, {"tone_hz": None}, id="clip-without-sound"),
    ],
)
async def test_anything_that_needs_re_encoding_takes_the_encode_path(
    rig: Rig, change: dict[str, Any], clip_options: dict[str, Any]
) -> None:
    clips = [rig.clip("first", **SAME), rig.clip("second", **{**SAME, **clip_options})]
    body: dict[str, Any] = {"video_ids": clips, "fade_out_seconds": 0, **change}
    if change.get("audio_mode") == "song":
        body["audio_id"] = (await rig.song())["audio_id"]
    answer = await rig.assemble(**body)
    assert answer["metadata"]["render"] == "encode"
    decode_whole_file(output_of(answer))


# ---- refusals


async def test_unknown_ids_are_one_404_naming_each(rig: Rig) -> None:
    known = rig.clip("known")
    unknown = ["0b7e7d5c-1f1a-4b4e-8c1e-2d3f4a5b6c7d", "not-a-uuid"]
    response = await rig.client.post(ASSEMBLE, json={"video_ids": [unknown[0], known, unknown[1]]})
    body = assert_error_shape(response, 404, "NOT_FOUND")
    assert all(name in body["message"] for name in unknown)
    assert [detail["field"] for detail in body["details"]] == ["video_ids.0", "video_ids.2"]

    missing_song = str(uuid.uuid4())
    response = await rig.client.post(
        ASSEMBLE, json={"video_ids": [known], "audio_id": missing_song}
    )
    assert missing_song in assert_error_shape(response, 404, "NOT_FOUND")["message"]


async def test_a_stored_clip_ffmpeg_cannot_read_is_a_400_naming_it(rig: Rig) -> None:
    junk = rig.media / "junk.mp4"
    junk.write_bytes(b"this is not a video at all" * 100)
    bad = store_clip(rig.root, junk)
    response = await rig.client.post(ASSEMBLE, json={"video_ids": [rig.clip("good"), bad]})
    body = assert_error_shape(response, 400, "VALIDATION_ERROR")
    assert bad in body["message"]
    assert body["details"][0]["field"] == "video_ids.1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"transition": "crossfade", "transition_seconds": 1.1}, "transition_seconds",
                     id="crossfade-over-half-the-shortest-clip"),
        pytest.param({"audio_mode": "song"}, "audio_mode", id="song-without-audio"),
        pytest.param({"audio_mode": "mix"}, "audio_mode", id="mix-without-audio"),
        pytest.param({"fade_out_seconds": 5}, "fade_out_seconds", id="fade-longer-than-video"),
        pytest.param({"width": 640}, "width", id="width-without-height"),
        pytest.param({"width": 641, "height": 360}, "width", id="odd-width"),
        pytest.param({"transition_seconds": 3}, "transition_seconds", id="transition-over-2-s"),
        pytest.param({"clip_audio_volume": 1.5}, "clip_audio_volume", id="volume-over-1"),
        pytest.param({"video_ids": []}, "video_ids", id="no-clips"),
        pytest.param({"video_ids": ["0b7e7d5c-1f1a-4b4e-8c1e-2d3f4a5b6c7d"] * 51}, "video_ids",
                     id="51-clips"),
    ],
)  # fmt: skip
async def test_options_the_clips_cannot_take_are_a_400_naming_the_field(
    rig: Rig, body: dict[str, Any], field: str
) -> None:
    clips = [rig.clip("short", seconds=2), rig.clip("long", seconds=2.5)]
    response = await rig.client.post(ASSEMBLE, json={"video_ids": clips, **body})
    details = assert_error_shape(response, 400, "VALIDATION_ERROR")["details"]
    assert field in {detail["field"] for detail in details}
    assert len(list((rig.root / "videos").glob("*.mp4"))) == len(clips)


async def test_an_offset_past_the_end_of_the_song_is_a_400(rig: Rig) -> None:
    song = await rig.song(seconds=3.0, suffix="flac")
    response = await rig.client.post(
        ASSEMBLE,
        json={
            "video_ids": [rig.clip("c")],
            "audio_id": song["audio_id"],
            "audio_offset_seconds": 3,
        },
    )
    details = assert_error_shape(response, 400, "VALIDATION_ERROR")["details"]
    assert details[0]["field"] == "audio_offset_seconds"


async def test_a_failing_ffmpeg_is_a_500_in_the_error_shape_with_its_reason_in_the_log(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A clip whose header is sound but whose every frame is garbage: it probes, then the
    decoder fails on every frame and ffmpeg gives up (exit status 69)."""
    good = make_clip(rig.media / "good.mp4", seconds=2)
    data = bytearray(good.read_bytes())
    mdat = data.index(b"mdat") + 4
    data[mdat + 64 :] = bytes((i * 37) % 251 for i in range(len(data) - mdat - 64))
    broken = rig.media / "broken.mp4"
    broken.write_bytes(bytes(data))
    video_id = store_clip(rig.root, broken)
    response = await rig.client.post(ASSEMBLE, json={"video_ids": [video_id]})
    body = assert_error_shape(response, 500, "INTERNAL_ERROR")
    assert "ffmpeg" in body["message"]
    assert "Traceback" not in response.text
    assert str(rig.root) not in response.text
    assert any("render failed" in record.getMessage() for record in caplog.records)
    assert list((rig.root / "videos").glob("*.mp4")) == [rig.root / "videos" / f"{video_id}.mp4"]
    assert not list((rig.root / ".staging").glob("*.tmp"))


# ---- concurrency


def running_renders() -> int:
    """ffmpeg processes of this test process that are renders (probes do not count)."""
    count = 0
    for child in psutil.Process().children(recursive=True):
        try:
            name, command = child.name(), child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "ffmpeg" in name and ("-filter_complex" in command or "concat" in command):
            count += 1
    return count


async def test_twenty_assemblies_with_a_cap_of_one_render_one_at_a_time_and_all_succeed(
    tmp_path: Path,
) -> None:
    root, media = tmp_path / "outputs", tmp_path / "media"
    media.mkdir()
    settings = make_settings(root, mv_mock_mode=True, mv_max_concurrent_renders=1)
    clips = [
        store_clip(root, make_clip(media / f"c{i}.mp4", size=(320, 180), seconds=1, color=color))
        for i, color in enumerate(["red", "blue"])
    ]
    peak = 0
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, running_renders())
            await asyncio.sleep(0.005)

    async with serve_app(settings) as (_, client):
        sampler = asyncio.create_task(sample())
        responses = await asyncio.gather(
            *(
                client.post(ASSEMBLE, json={"video_ids": clips, "transition": "crossfade"})
                for _ in range(20)
            )
        )
        sampling = False
        await sampler
    assert [response.status_code for response in responses] == [200] * 20
    waits = sorted(response.json()["metadata"]["queue_wait_seconds"] for response in responses)
    assert peak == 1
    assert waits[0] < 0.5
    assert waits[-1] > waits[0]
    assert len({response.json()["video_id"] for response in responses}) == 20


# ---- mock mode, through a real server


async def test_mock_clips_and_a_song_make_a_finished_video(rig: Rig) -> None:
    video_ids = []
    for aspect_ratio, with_audio in (("16:9", True), ("9:16", False), ("16:9", False)):
        response = await rig.client.post(
            "/api/mv/generate_video",
            json={
                "prompt": f"A robot dances, {aspect_ratio}",
                "aspect_ratio": aspect_ratio,
                "generate_audio": with_audio,
                "duration": 4,
                "backend": "mock",
            },
        )
        assert response.status_code == 200, response.text
        video_ids.append(response.json()["video_id"])
    song = await rig.song()
    answer = await rig.assemble(
        video_ids=video_ids, audio_id=song["audio_id"], transition="crossfade"
    )
    path = output_of(answer)
    decode_whole_file(path)
    assert answer["metadata"]["duration_seconds"] == pytest.approx(12 - 2 * 0.5)
    assert abs(count_video_frames(path) - 11 * 12) <= 1
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["sha256"] == answer["metadata"]["sha256"]
