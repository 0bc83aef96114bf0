"""One ffmpeg command per music video, built by pure functions from a `RenderPlan`.

Encode path: ONE filter graph does everything, with no intermediate files. Every clip is
brought to the output's frame rate, scaled to fit inside the output size and padded
(never stretched), and cut to a whole number of frames; its sound (or silence, for a clip
without any) is resampled to 48 kHz stereo and cut to the same length. The clips are then
joined by `concat` (cut) or by chained `xfade`/`acrossfade` (crossfade). The song is taken
from its offset, padded with silence and cut to the video's length; `mix` adds the clips'
sound under it at `clip_audio_volume`. The end fades to black and to silence.

Lengths are counted in output frames, so the video lasts exactly
`(sum of clip frames - (n - 1) * transition frames) / fps`: the contract's
`sum(lengths) - (n - 1) * transition_seconds`, each term rounded to a whole frame.

Stream-copy path: when nothing needs re-encoding, the concat demuxer joins the files as
they are (`-c copy`), hundreds of times faster than real time.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

from backend.mv.assembly.probe import MediaProbe

AudioMode = Literal["song", "clips", "mix"]
Transition = Literal["cut", "crossfade"]

SAMPLE_RATE_HZ = 48_000
AUDIO_BITRATE = "192k"
X264_PRESET = "veryfast"
X264_CRF = "21"
NTSC_RATES = {"23.98": Fraction(24000, 1001), "23.976": Fraction(24000, 1001)}
NTSC_RATES |= {"29.97": Fraction(30000, 1001), "59.94": Fraction(60000, 1001)}
COPYABLE_VIDEO = ("h264", "yuv420p")
COPYABLE_AUDIO_CODECS = {"aac"}


def frame_rate(text: str) -> Fraction:
    """ffmpeg's printed rate (`24`, `12.50`, `29.97`) as an exact fraction; the NTSC rates
    ffmpeg rounds when printing are restored (`29.97` → 30000/1001)."""
    return NTSC_RATES.get(text) or Fraction(text).limit_denominator(1001)


def whole_frames(seconds: float, fps: Fraction) -> int:
    return max(round(Fraction(seconds) * fps), 1)


@dataclass(frozen=True)
class ClipInput:
    path: Path
    frames: int
    """How many output frames the clip lasts."""
    has_audio: bool


@dataclass(frozen=True)
class SongInput:
    path: Path
    offset_seconds: float


@dataclass(frozen=True)
class RenderPlan:
    clips: tuple[ClipInput, ...]
    width: int
    height: int
    fps: Fraction
    transition: Transition
    transition_frames: int
    """Frames each crossfade overlaps (0 for a cut)."""
    fade_out_seconds: float
    audio_mode: AudioMode
    clip_audio_volume: float
    song: SongInput | None

    @property
    def total_frames(self) -> int:
        overlaps = (len(self.clips) - 1) * self.transition_frames
        return sum(clip.frames for clip in self.clips) - overlaps

    @property
    def duration_seconds(self) -> float:
        return float(self.total_frames / self.fps)

    @property
    def uses_clip_audio(self) -> bool:
        wanted = self.audio_mode in ("clips", "mix")
        return wanted and any(clip.has_audio for clip in self.clips)

    @property
    def has_audio(self) -> bool:
        return self.song is not None or self.uses_clip_audio


def _samples(frames: int, fps: Fraction) -> int:
    return round(frames * SAMPLE_RATE_HZ / fps)


def _seconds(value: Fraction | float) -> str:
    return f"{float(value):.6f}"


STEREO_48K = f"aresample={SAMPLE_RATE_HZ},aformat=sample_fmts=fltp:channel_layouts=stereo"


def _clip_video(index: int, clip: ClipInput, plan: RenderPlan) -> str:
    """Frame rate, fit inside the output (never stretched), pad, exactly `clip.frames`;
    `tpad` clones the last frame if the stream ends a little early."""
    w, h = plan.width, plan.height
    return (
        f"[{index}:v:0]fps={plan.fps},"
        f"scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,"
        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format=yuv420p,"
        f"tpad=stop_mode=clone:stop=-1,trim=end_frame={clip.frames},setpts=PTS-STARTPTS"
        f"[v{index}]"
    )


def _clip_audio(index: int, clip: ClipInput, plan: RenderPlan) -> str:
    samples = _samples(clip.frames, plan.fps)
    source = (
        f"[{index}:a:0]{STEREO_48K},apad"
        if clip.has_audio
        else f"anullsrc=r={SAMPLE_RATE_HZ}:cl=stereo"
    )
    return f"{source},atrim=end_sample={samples},asetpts=PTS-STARTPTS[a{index}]"


def _pieces(plan: RenderPlan, index: int) -> dict[str, tuple[int, int]]:
    """The frame ranges `[start, end)` clip `index` is split into for crossfades: `head`
    (faded in from the clip before), `body` (played alone) and `tail` (faded out into the
    next one); a body of no frames is left out."""
    frames, overlap = plan.clips[index].frames, plan.transition_frames
    body_start = overlap if index > 0 else 0
    body_end = frames - overlap if index < len(plan.clips) - 1 else frames
    pieces = {}
    if index > 0:
        pieces["head"] = (0, overlap)
    if body_end > body_start:
        pieces["body"] = (body_start, body_end)
    if index < len(plan.clips) - 1:
        pieces["tail"] = (frames - overlap, frames)
    return pieces


def _split(stream: str, pieces: dict[str, tuple[int, int]], audio: bool, fps: Fraction) -> str:
    """`[v2]` → `[v2head]`, `[v2body]`, `[v2tail]`: each a frame (or sample) range from 0."""
    kind = "a" if audio else ""
    labels = "".join(f"[{stream}{name}_]" for name in pieces)
    chains = [f"[{stream}]{kind}split={len(pieces)}{labels}"]
    for name, (start, end) in pieces.items():
        if audio:
            bounds = f"start_sample={_samples(start, fps)}:end_sample={_samples(end, fps)}"
        else:
            bounds = f"start_frame={start}:end_frame={end}"
        chains.append(
            f"[{stream}{name}_]{kind}trim={bounds},{kind}setpts=PTS-STARTPTS[{stream}{name}]"
        )
    return ";".join(chains)


def _join(plan: RenderPlan, with_audio: bool) -> list[str]:
    """Chains that join `[v0]…` (and `[a0]…`) into `[vjoined]` (and `[ajoined]`).

    A crossfade is one more concat segment: each clip is split into head, body and tail,
    and the tail of one is faded into the head of the next (`xfade`, `acrossfade`). One
    `concat` then asks for one segment at a time, so ffmpeg decodes one clip at a time and
    memory stays flat; a chain of xfades would decode every clip from the start and queue
    their frames until their turn (1.4 GB for twelve 8 s clips at 720p).
    """
    count = len(plan.clips)
    kinds = ("v", "a") if with_audio else ("v",)
    if plan.transition == "cut" or count == 1:
        pads = "".join(f"[{kind}{i}]" for i in range(count) for kind in kinds)
        outputs = "".join(f"[{kind}joined]" for kind in kinds)
        return [f"{pads}concat=n={count}:v=1:a={int(with_audio)}{outputs}"]
    chains = []
    segments: list[str] = []
    overlap = _seconds(Fraction(plan.transition_frames) / plan.fps)
    overlap_samples = _samples(plan.transition_frames, plan.fps)
    for i in range(count):
        pieces = _pieces(plan, i)
        for kind in kinds:
            chains.append(_split(f"{kind}{i}", pieces, kind == "a", plan.fps))
        if "head" in pieces:
            chains.append(
                f"[v{i - 1}tail][v{i}head]xfade=transition=fade:duration={overlap}:offset=0[vx{i}]"
            )
            if with_audio:
                chains.append(
                    f"[a{i - 1}tail][a{i}head]acrossfade=ns={overlap_samples}:c1=tri:c2=tri[ax{i}]"
                )
            segments.append("".join(f"[{kind}x{i}]" for kind in kinds))
        if "body" in pieces:
            segments.append("".join(f"[{kind}{i}body]" for kind in kinds))
    outputs = "".join(f"[{kind}joined]" for kind in kinds)
    chains.append(f"{''.join(segments)}concat=n={len(segments)}:v=1:a={int(with_audio)}{outputs}")
    return chains


def filter_graph(plan: RenderPlan) -> str:
    """The whole graph: inputs are the clips in order, then the song; outputs `[vout]` and,
    when the video has sound, `[aout]`."""
    clip_audio = plan.uses_clip_audio
    chains = [_clip_video(i, clip, plan) for i, clip in enumerate(plan.clips)]
    if clip_audio:
        chains += [_clip_audio(i, clip, plan) for i, clip in enumerate(plan.clips)]
    chains += _join(plan, clip_audio)

    fade = plan.fade_out_seconds
    fade_start = _seconds(max(plan.duration_seconds - fade, 0))
    video_fade = f",fade=t=out:st={fade_start}:d={_seconds(fade)}" if fade else ""
    chains.append(f"[vjoined]null{video_fade}[vout]")
    if not plan.has_audio:
        return ";".join(chains)

    audio_fade = f",afade=t=out:st={fade_start}:d={_seconds(fade)}" if fade else ""
    if plan.song is not None:
        song_index = len(plan.clips)
        total_samples = _samples(plan.total_frames, plan.fps)
        chains.append(
            f"[{song_index}:a:0]atrim=start={_seconds(plan.song.offset_seconds)},"
            f"asetpts=PTS-STARTPTS,{STEREO_48K},apad,atrim=end_sample={total_samples}[song]"
        )
    if plan.song is None:
        chains.append(f"[ajoined]anull{audio_fade}[aout]")
    elif clip_audio:
        chains.append(f"[ajoined]volume={plan.clip_audio_volume}[under]")
        chains.append(
            "[song][under]amix=inputs=2:duration=first:dropout_transition=0:normalize=0"
            f"{audio_fade}[aout]"
        )
    else:
        chains.append(f"[song]anull{audio_fade}[aout]")
    return ";".join(chains)


def encode_args(plan: RenderPlan, output: Path) -> list[str]:
    """H.264 yuv420p (plays in every browser and phone), x264 `veryfast` at CRF 21 (close
    to transparent for generated footage, and quick on a small CPU), AAC 48 kHz stereo,
    and the index first (`+faststart`) so playback starts before the download ends."""
    args: list[str] = []
    for clip in plan.clips:
        args += ["-i", str(clip.path)]
    if plan.song is not None:
        args += ["-i", str(plan.song.path)]
    args += ["-filter_complex", filter_graph(plan), "-map", "[vout]"]
    args += ["-map_metadata", "-1"]
    args += ["-c:v", "libx264", "-preset", X264_PRESET, "-crf", X264_CRF, "-pix_fmt", "yuv420p"]
    if plan.has_audio:
        args += ["-map", "[aout]", "-c:a", "aac", "-b:a", AUDIO_BITRATE]
        args += ["-ar", str(SAMPLE_RATE_HZ), "-ac", "2"]
    return [*args, "-movflags", "+faststart", "-f", "mp4", str(output)]


def concat_list(paths: Sequence[Path]) -> bytes:
    """The concat demuxer's list, read from stdin: no list file to write and clean up."""
    lines = ["ffconcat version 1.0"]
    for path in paths:
        quoted = str(path).replace("'", "'\\''")
        lines.append(f"file 'file:{quoted}'")
    return ("\n".join(lines) + "\n").encode()


def stream_copy_args(output: Path) -> list[str]:
    return [
        *("-f", "concat", "-safe", "0", "-protocol_whitelist", "file,pipe", "-i", "pipe:0"),
        *("-map", "0", "-map_metadata", "-1", "-c", "copy"),
        *("-movflags", "+faststart", "-f", "mp4", str(output)),
    ]


def _copy_signature(probe: MediaProbe) -> tuple[object, ...] | None:
    video, audio = probe.video, probe.audio
    if video is None or video.fps is None or (video.codec, video.pix_fmt) != COPYABLE_VIDEO:
        return None
    if audio is not None and audio.codec not in COPYABLE_AUDIO_CODECS:
        return None
    audio_layout = (audio.codec, audio.sample_rate_hz, audio.layout) if audio else None
    return (video.width, video.height, video.fps, audio_layout)


def can_stream_copy(
    clips: Sequence[MediaProbe],
    *,
    width: int,
    height: int,
    fps: Fraction,
    transition: Transition,
    audio_mode: AudioMode,
    fade_out_seconds: float,
) -> bool:
    """DESIGN.md's rule: every clip has the same codec, size, frame rate, pixel format and
    audio layout, the transition is a cut, `audio_mode` is `clips` and there is no fade;
    and (so the output keeps its promise) that codec is H.264 yuv420p with AAC or no sound,
    at the requested size and frame rate."""
    if transition != "cut" or audio_mode != "clips" or fade_out_seconds > 0:
        return False
    signatures = {_copy_signature(probe) for probe in clips}
    if len(signatures) != 1 or None in signatures:
        return False
    first = clips[0].video
    assert first is not None  # a signature was made from it
    assert first.fps is not None
    return (first.width, first.height, frame_rate(first.fps)) == (width, height, fps)
