"""`assemble_video`: stored clips (and a stored song) joined into one stored music video.

Every check happens before the render waits for its slot: unknown ids (404, all of them
named), clips ffmpeg cannot read (400, named), options that do not fit the clips (400).
The render then holds one of the `render` lane's `MV_MAX_CONCURRENT_RENDERS` slots, writes
into the store's staging and is published as `videos/<video_id>.mp4` with its sidecar, so
`get_video`, HEAD, Range and `/info` serve it like any clip (and it can be a clip of a
later assembly). No FastAPI here: the job engine calls this from a durable workflow.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from backend.jobs.webhooks.targets import WebhookFields
from backend.mv.assembly.audio import StoredAudio, find_song
from backend.mv.assembly.ffmpeg import FFmpegFailed, run_ffmpeg
from backend.mv.assembly.graph import (
    AudioMode,
    ClipInput,
    RenderPlan,
    SongInput,
    Transition,
    can_stream_copy,
    concat_list,
    encode_args,
    frame_rate,
    stream_copy_args,
    whole_frames,
)
from backend.mv.assembly.probe import MediaProbe, probe_media
from backend.mv.errors import (
    InsufficientStorage,
    NotFound,
    RenderFailed,
    ValidationFailed,
    problem,
)
from backend.mv.limiter import Slots
from backend.mv.params import SidecarFields, apply_defaults
from backend.mv.storage.base import ArtifactStore
from backend.mv.storage.files import FileDigest
from backend.mv.storage.identity import new_artifact_id, parse_artifact_id, utc_now_iso
from backend.mv.video_generator import VIDEO_FOLDER, StoredVideo, find_video

logger = logging.getLogger(__name__)

RENDER_LANE = "render"
MAX_CLIPS = 50
PROBES_AT_ONCE = 4
DEFAULT_FPS = Fraction(24)
"""For a first clip whose frame rate ffmpeg does not print (rare): the cinema rate."""
DEFAULTS: dict[str, Any] = {
    "transition": "cut",
    "transition_seconds": 0.5,
    "fade_out_seconds": 1.0,
    "clip_audio_volume": 0.3,
    "audio_offset_seconds": 0.0,
}

ProgressReport = Callable[[str, int | None, dict[str, Any] | None], Awaitable[None]]
"""`(stage, percent, detail)`: the stage is `rendering`, the percent comes from ffmpeg's
`out_time` against the video's length."""


class AssembleVideoRequest(WebhookFields):
    video_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1,
        max_length=MAX_CLIPS,
        description="Stored clips in order (video_id of generate_video, or of an earlier "
        "assembly); the same id may appear twice",
        examples=[["3f2b9c1e-8d4a-4f6e-9b7a-1c2d3e4f5a6b", "7d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a"]],
    )
    audio_id: str | None = Field(
        default=None, max_length=64, description="audio_id of an uploaded song (upload_audio)"
    )
    audio_mode: Literal["song", "clips", "mix"] | None = Field(
        default=None,
        description="song: the song alone (default with audio_id); clips: the clips' own "
        "sound (default without); mix: the song with the clips' sound under it",
    )
    clip_audio_volume: float | None = Field(
        default=None, ge=0, le=1, description="The clips' volume in mix mode (default 0.3)"
    )
    audio_offset_seconds: float | None = Field(
        default=None, ge=0, description="Where in the song the video starts (default 0)"
    )
    transition: Literal["cut", "crossfade"] | None = Field(
        default=None, description="Between clips: cut (default) or crossfade"
    )
    transition_seconds: float | None = Field(
        default=None,
        ge=0.1,
        le=2.0,
        description="Crossfade length (default 0.5); at most half the shortest clip",
    )
    fade_out_seconds: float | None = Field(
        default=None, ge=0, le=5, description="Fade to black and silence at the end (default 1)"
    )
    width: int | None = Field(
        default=None, ge=16, le=4096, multiple_of=2, description="Default: the first clip's"
    )
    height: int | None = Field(
        default=None, ge=16, le=4096, multiple_of=2, description="Default: the first clip's"
    )
    fps: float | None = Field(
        default=None, gt=0, le=120, description="Frames per second; default: the first clip's"
    )


class MusicVideoMetadata(BaseModel):
    kind: Literal["music_video"] = "music_video"
    video_ids: list[str]
    audio_id: str | None
    duration_seconds: float
    width: int
    height: int
    fps: float
    has_audio: bool
    render: Literal["stream_copy", "encode"] = Field(
        description="stream_copy: the clips joined as they are; encode: one ffmpeg graph"
    )
    parameters_used: dict[str, Any]
    defaults_applied: list[str]
    file_size_bytes: int
    sha256: str
    generation_timestamp: str
    processing_time_seconds: float
    queue_wait_seconds: float = Field(description="Time spent waiting for a render slot")
    job_id: str | None = Field(default=None, description="The job that made it, if any")


class MusicVideoSidecar(SidecarFields, MusicVideoMetadata):
    video_id: str


class AssembleVideoResponse(BaseModel):
    video_id: str = Field(description="UUID of the stored music video")
    video_path: str = Field(description="Absolute path of the video on the server")
    video_url: str = Field(description="Where GET serves it (Range requests supported)")
    metadata: MusicVideoMetadata


async def _stored_clips(video_ids: Sequence[str], store: ArtifactStore) -> list[StoredVideo]:
    """Every clip, in order; one 404 naming all the ids that are not stored."""
    found: list[StoredVideo | None] = []
    for video_id in video_ids:
        try:
            stored = await find_video(video_id, store)
        except NotFound:
            stored = None
        found.append(stored if stored is not None and stored.size_bytes is not None else None)
    missing = [
        (i, video_id)
        for i, (video_id, stored) in enumerate(zip(video_ids, found, strict=True))
        if stored is None
    ]
    if missing:
        names = ", ".join(video_id[:64] for _, video_id in missing)
        details = [problem(f"video_ids.{i}", "no stored video with this id") for i, _ in missing]
        raise NotFound(f"No stored video with id {names}", details=details)
    return [stored for stored in found if stored is not None]


async def _probed(clips: Sequence[StoredVideo], store: ArtifactStore) -> list[MediaProbe]:
    """Each clip as ffmpeg reads it; one 400 naming every clip it cannot read as video."""
    slots = asyncio.Semaphore(PROBES_AT_ONCE)

    async def probe(clip: StoredVideo) -> MediaProbe | None:
        async with slots:
            return await probe_media(store.local_path(clip.key))

    probes = await asyncio.gather(*(probe(clip) for clip in clips))
    unreadable = [
        problem(f"video_ids.{i}", f"ffmpeg cannot read video {clip.video_id}")
        for i, (clip, found) in enumerate(zip(clips, probes, strict=True))
        if found is None or found.video is None or not found.duration_seconds
    ]
    if unreadable:
        raise ValidationFailed.from_problems(unreadable)
    return [found for found in probes if found is not None]


def _output_shape(request: AssembleVideoRequest, first: MediaProbe) -> tuple[int, int, Fraction]:
    if (request.width is None) != (request.height is None):
        raise ValidationFailed.about("width", "give width and height together, or neither")
    assert first.video is not None
    width = request.width or first.video.width // 2 * 2
    height = request.height or first.video.height // 2 * 2
    if request.fps is not None:
        fps = frame_rate(f"{request.fps:g}")
    else:
        fps = frame_rate(first.video.fps) if first.video.fps else DEFAULT_FPS
    return width, height, fps


def _checked_options(
    request: AssembleVideoRequest,
    resolved: dict[str, Any],
    durations: Sequence[float],
    song: StoredAudio | None,
) -> None:
    """400 for options the clips or the song cannot take, all at once."""
    problems = []
    if resolved["audio_mode"] in ("song", "mix") and song is None:
        problems.append(problem("audio_mode", f"{resolved['audio_mode']} needs an audio_id"))
    song_seconds = float(song.sidecar.get("duration_seconds", 0)) if song else None
    if song_seconds is not None and resolved["audio_offset_seconds"] >= song_seconds:
        problems.append(
            problem("audio_offset_seconds", f"must be below the song's {song_seconds:g} s")
        )
    shortest = min(durations)
    if resolved["transition"] == "crossfade" and resolved["transition_seconds"] > shortest / 2:
        index = durations.index(shortest)
        problems.append(
            problem(
                "transition_seconds",
                f"must be at most half the shortest clip (video "
                f"{request.video_ids[index]}: {shortest:g} s)",
            )
        )
    if problems:
        raise ValidationFailed.from_problems(problems)


def _plan(
    request: AssembleVideoRequest,
    probes: Sequence[MediaProbe],
    clips: Sequence[StoredVideo],
    song: StoredAudio | None,
    store: ArtifactStore,
) -> tuple[RenderPlan, dict[str, Any], list[str]]:
    defaults = {**DEFAULTS, "audio_mode": "song" if request.audio_id else "clips"}
    resolved, defaults_applied = apply_defaults(request, defaults)
    durations = [float(probe.duration_seconds or 0) for probe in probes]
    _checked_options(request, resolved, durations, song)
    width, height, fps = _output_shape(request, probes[0])
    crossfade = resolved["transition"] == "crossfade"
    transition: Transition = resolved["transition"]
    audio_mode: AudioMode = resolved["audio_mode"]
    plan = RenderPlan(
        clips=tuple(
            ClipInput(
                store.local_path(clip.key), whole_frames(seconds, fps), probe.audio is not None
            )
            for clip, probe, seconds in zip(clips, probes, durations, strict=True)
        ),
        width=width,
        height=height,
        fps=fps,
        transition=transition,
        transition_frames=whole_frames(resolved["transition_seconds"], fps) if crossfade else 0,
        fade_out_seconds=resolved["fade_out_seconds"],
        audio_mode=audio_mode,
        clip_audio_volume=resolved["clip_audio_volume"],
        song=SongInput(store.local_path(song.key), resolved["audio_offset_seconds"])
        if song is not None and audio_mode != "clips"
        else None,
    )
    if plan.fade_out_seconds > plan.duration_seconds:
        message = f"must not be longer than the video ({plan.duration_seconds:g} s)"
        raise ValidationFailed.about("fade_out_seconds", message)
    resolved |= {"width": width, "height": height, "fps": float(fps)}
    defaults_applied += [
        name for name in ("width", "height", "fps") if getattr(request, name) is None
    ]
    return plan, resolved, defaults_applied


@dataclass(frozen=True)
class PreparedRender:
    """A request checked against its clips and song, ready for ffmpeg."""

    clips: list[StoredVideo]
    song: StoredAudio | None
    plan: RenderPlan
    stream_copy: bool
    parameters_used: dict[str, Any]
    defaults_applied: list[str]

    def command(self, output: Path) -> tuple[list[str], bytes | None]:
        """ffmpeg's arguments writing to `output`, and what its stdin must receive."""
        if self.stream_copy:
            return stream_copy_args(output), concat_list([clip.path for clip in self.plan.clips])
        return encode_args(self.plan, output), None


async def prepare_render(request: AssembleVideoRequest, store: ArtifactStore) -> PreparedRender:
    """Every check of a request, before any wait: 404 naming each unknown id, 400 naming each
    clip ffmpeg cannot read and every option the clips or the song cannot take."""
    clips = await _stored_clips(request.video_ids, store)
    song = await find_song(request.audio_id, store) if request.audio_id is not None else None
    probes = await _probed(clips, store)
    plan, resolved, defaults_applied = _plan(request, probes, clips, song, store)
    stream_copy = can_stream_copy(
        probes,
        width=plan.width,
        height=plan.height,
        fps=plan.fps,
        transition=plan.transition,
        audio_mode=plan.audio_mode,
        fade_out_seconds=plan.fade_out_seconds,
    )
    return PreparedRender(clips, song, plan, stream_copy, resolved, defaults_applied)


async def _render(
    prepared: PreparedRender,
    output: Path,
    *,
    timeout_seconds: float,
    on_progress: ProgressReport | None,
) -> None:
    plan = prepared.plan
    last_percent = [-1]

    async def report(seconds: float) -> None:
        if on_progress is None:
            return
        percent = min(int(seconds * 100 / plan.duration_seconds), 99)
        if percent != last_percent[0]:
            last_percent[0] = percent
            await on_progress("rendering", percent, {"out_time_seconds": round(seconds, 3)})

    args, stdin_data = prepared.command(output)
    try:
        await run_ffmpeg(
            args, stdin_data=stdin_data, on_progress=report, timeout_seconds=timeout_seconds
        )
    except FFmpegFailed as exc:
        logger.error("render failed: %s; ffmpeg %s", exc, " ".join(args))
        raise RenderFailed(
            f"The video could not be rendered (ffmpeg exited with status {exc.returncode})"
        ) from exc


async def assemble_video(
    request: AssembleVideoRequest,
    *,
    store: ArtifactStore,
    limiter: Slots,
    render_timeout_seconds: float,
    min_free_bytes: int,
    video_url_for: Callable[[str], str],
    video_id: str | None = None,
    on_progress: ProgressReport | None = None,
    job_id: str | None = None,
) -> AssembleVideoResponse:
    """Render the music video `request` describes and store it; raises the service's errors.

    `video_id` given means "produce exactly this id" (a resumed job renders to the id it
    was given): a video already stored under it is the answer, and a file a previous
    attempt left without its sidecar is replaced. `render_timeout_seconds` bounds ffmpeg's
    run (the wait for a slot does not count); the store must have `min_free_bytes` free
    when the render starts (else 507). `on_progress` hears each percent of the render.
    """
    started = time.monotonic()
    resumed = video_id is not None
    if video_id is not None and parse_artifact_id(video_id) != video_id:
        raise ValueError(f"video_id must be a canonical UUID, got {video_id!r}")
    video_id = video_id or new_artifact_id()
    key = f"{VIDEO_FOLDER}/{video_id}.mp4"
    sidecar_key = f"{VIDEO_FOLDER}/{video_id}.json"
    if resumed:
        if (stored := await store.read_json(sidecar_key)) is not None:
            metadata = MusicVideoMetadata.model_validate(stored)
            return _answer(video_id, metadata, store, video_url_for)
        await store.delete(key)

    prepared = await prepare_render(request, store)
    plan, clips, song = prepared.plan, prepared.clips, prepared.song
    async with store.publishing(key, sidecar=sidecar_key):
        async with limiter.slot(RENDER_LANE) as ticket:
            await store.check_writable(min_free_bytes)
            async with store.staging(key) as output:
                await _render(
                    prepared,
                    output,
                    timeout_seconds=render_timeout_seconds,
                    on_progress=on_progress,
                )
                digest = await FileDigest.of_file(output)
        if on_progress is not None:
            await on_progress("rendering", 100, None)
        metadata = MusicVideoMetadata(
            video_ids=[clip.video_id for clip in clips],
            audio_id=song.audio_id if song else None,
            duration_seconds=round(plan.duration_seconds, 3),
            width=plan.width,
            height=plan.height,
            fps=round(float(plan.fps), 3),
            has_audio=plan.has_audio,
            render="stream_copy" if prepared.stream_copy else "encode",
            parameters_used=prepared.parameters_used,
            defaults_applied=prepared.defaults_applied,
            file_size_bytes=digest.size_bytes,
            sha256=digest.sha256,
            generation_timestamp=utc_now_iso(),
            processing_time_seconds=round(time.monotonic() - started, 3),
            queue_wait_seconds=ticket.waited_seconds,
            job_id=job_id,
        )
        sidecar = MusicVideoSidecar(
            video_id=video_id,
            file_name=f"{video_id}.mp4",
            created_at=metadata.generation_timestamp,
            **metadata.model_dump(),
        )
        try:
            await store.put_json(sidecar_key, sidecar.model_dump(mode="json"))
        except OSError as exc:
            raise InsufficientStorage.while_storing(exc) from exc
    logger.info(
        "assembled music video %s: %d clips, %s, %.1f s in %.1f s",
        video_id,
        len(clips),
        metadata.render,
        metadata.duration_seconds,
        metadata.processing_time_seconds,
    )
    return _answer(video_id, metadata, store, video_url_for)


def _answer(
    video_id: str,
    metadata: MusicVideoMetadata,
    store: ArtifactStore,
    video_url_for: Callable[[str], str],
) -> AssembleVideoResponse:
    return AssembleVideoResponse(
        video_id=video_id,
        video_path=store.uri(f"{VIDEO_FOLDER}/{video_id}.mp4"),
        video_url=video_url_for(video_id),
        metadata=metadata,
    )
