"""Songs uploaded for music videos: streamed into the store, checked by ffmpeg, served back.

An upload is never trusted by its name or Content-Type. Its first bytes pick the file
name's extension (MP3, WAV, M4A, AAC, Ogg, FLAC; anything else is refused before the rest
is read), the bytes stream into a staged file with `max_bytes` enforced as they arrive
(413), then ffmpeg must open it as that format with an audio stream and no picture stream,
and decode it to the end without an error (a truncated file fails here), within
`max_seconds` (400). Only then is it published as `audio/<audio_id>.<ext>`, with its
sidecar.
"""

import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, Field

from backend.mv.assembly.probe import MediaProbe, decoded_audio_seconds, probe_media
from backend.mv.errors import NotFound, PayloadTooLarge, ValidationFailed
from backend.mv.params import info_fields
from backend.mv.storage.base import ArtifactStore, find_sidecar
from backend.mv.storage.files import FileDigest, chunked_file
from backend.mv.storage.identity import new_artifact_id, utc_now_iso

logger = logging.getLogger(__name__)

AUDIO_FOLDER = "audio"
SNIFF_BYTES = 12
DECODE_TIMEOUT_SECONDS = 120.0
"""A 600 s song decodes in a few seconds; this only stops a pathological file."""
DURATION_SLACK_SECONDS = 1.0
"""How far a container's stated duration may exceed the limit before the file is refused
without decoding it (the decoded length decides the rest)."""
ACCEPTED = "MP3, WAV, M4A/AAC, OGG/Opus or FLAC"


@dataclass(frozen=True)
class AudioFormat:
    name: str
    """What the answer's `format` says, and the file name's extension."""
    content_type: str
    demuxers: frozenset[str]
    """ffmpeg's demuxer names for it: one of them must have opened the file."""
    codecs: frozenset[str]


FORMATS = {
    audio_format.name: audio_format
    for audio_format in (
        AudioFormat("mp3", "audio/mpeg", frozenset({"mp3"}), frozenset({"mp3"})),
        AudioFormat("wav", "audio/wav", frozenset({"wav"}), frozenset()),
        AudioFormat("m4a", "audio/mp4", frozenset({"m4a"}), frozenset({"aac", "alac"})),
        AudioFormat("aac", "audio/aac", frozenset({"aac"}), frozenset({"aac"})),
        AudioFormat("ogg", "audio/ogg", frozenset({"ogg"}), frozenset({"opus", "vorbis"})),
        AudioFormat("flac", "audio/flac", frozenset({"flac"}), frozenset({"flac"})),
    )
}
"""An empty `codecs` takes any codec the container holds (WAV: PCM of every kind)."""


def sniff_format(head: bytes) -> AudioFormat | None:
    """The format a file's first bytes announce, or None for anything else."""
    if head.startswith(b"ID3"):
        return FORMATS["mp3"]
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return FORMATS["wav"]
    if head[4:8] == b"ftyp":
        return FORMATS["m4a"]
    if head.startswith(b"OggS"):
        return FORMATS["ogg"]
    if head.startswith(b"fLaC"):
        return FORMATS["flac"]
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # frame sync and layer 0: an ADTS AAC stream
            return FORMATS["aac"]
        if head[1] & 0xE0 == 0xE0:  # frame sync of an MPEG audio frame
            return FORMATS["mp3"]
    return None


class AudioMetadata(BaseModel):
    audio_id: str = Field(description="UUID of the stored song")
    format: str = Field(description="mp3, wav, m4a, aac, ogg or flac, from the content")
    codec: str = Field(description="The audio codec ffmpeg found (mp3, pcm_s16le, aac, opus…)")
    duration_seconds: float = Field(description="Decoded length")
    sample_rate_hz: int
    channels: int
    file_size_bytes: int
    sha256: str
    created_at: str


class UploadAudioResponse(AudioMetadata):
    audio_url: str = Field(description="Where GET serves the song (Range requests supported)")


class AudioSidecar(AudioMetadata):
    file_name: str


class AudioInfo(BaseModel):
    audio_id: str
    file_size_bytes: int
    created_at: str
    exists: bool
    metadata: dict[str, Any]


async def _with_head(pieces: AsyncIterable[bytes]) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first `SNIFF_BYTES` (fewer if the file is shorter) and an iterator of the rest."""
    iterator = aiter(pieces)
    head = b""
    async for piece in iterator:
        head += piece
        if len(head) >= SNIFF_BYTES:
            break
    return head, iterator


async def _write_capped(
    path: Path, head: bytes, rest: AsyncIterator[bytes], max_bytes: int
) -> FileDigest:
    def too_large() -> PayloadTooLarge:
        return PayloadTooLarge(f"The audio file exceeds the limit of {max_bytes} bytes")

    received = len(head)
    if received > max_bytes:
        raise too_large()
    async with chunked_file(path) as writer:
        await writer.write(head)
        async for piece in rest:
            received += len(piece)
            if received > max_bytes:
                raise too_large()
            await writer.write(piece)
    return writer.digest


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed.about("file", message)


async def _checked_audio(
    path: Path, sniffed: AudioFormat, max_seconds: float
) -> tuple[MediaProbe, float]:
    """The probe and decoded length of a staged upload; 400 for anything unusable."""
    probe = await probe_media(path)
    if probe is None or probe.audio is None:
        raise _refuse(f"ffmpeg cannot read it as audio; send {ACCEPTED}")
    if probe.video is not None:
        raise _refuse("it holds a video stream; send the audio alone")
    codecs_ok = not sniffed.codecs or probe.audio.codec in sniffed.codecs
    if not sniffed.demuxers & set(probe.formats) or not codecs_ok:
        found = f"{probe.audio.codec} audio in {sniffed.name}"
        raise _refuse(f"{found} is not accepted; send {ACCEPTED}")
    stated = probe.duration_seconds
    if stated is not None and stated > max_seconds + DURATION_SLACK_SECONDS:
        raise _refuse(f"it lasts {stated:.1f} s, more than the limit of {max_seconds:g} s")
    decoded = await decoded_audio_seconds(path, timeout_seconds=DECODE_TIMEOUT_SECONDS)
    if decoded is None or decoded <= 0:
        raise _refuse("it cannot be decoded to the end (truncated or corrupt)")
    if decoded > max_seconds:
        raise _refuse(f"it lasts {decoded:.1f} s, more than the limit of {max_seconds:g} s")
    return probe, decoded


async def upload_audio(
    pieces: AsyncIterable[bytes],
    *,
    store: ArtifactStore,
    max_bytes: int,
    max_seconds: float,
    audio_url_for: Callable[[str], str],
) -> UploadAudioResponse:
    """Store the song whose bytes `pieces` yields; see the module's docstring for the checks.

    `pieces` is read once, as it arrives: memory stays flat whatever the size.
    """
    head, rest = await _with_head(pieces)
    sniffed = sniff_format(head)
    if sniffed is None:
        raise _refuse(f"it is not {ACCEPTED} audio")
    audio_id = new_artifact_id()
    file_name = f"{audio_id}.{sniffed.name}"
    key = f"{AUDIO_FOLDER}/{file_name}"
    sidecar_key = f"{AUDIO_FOLDER}/{audio_id}.json"
    async with store.publishing(key, sidecar=sidecar_key):
        async with store.staging(key) as temp:
            digest = await _write_capped(temp, head, rest, max_bytes)
            probe, seconds = await _checked_audio(temp, sniffed, max_seconds)
        assert probe.audio is not None
        metadata = AudioMetadata(
            audio_id=audio_id,
            format=sniffed.name,
            codec=probe.audio.codec,
            duration_seconds=round(seconds, 3),
            sample_rate_hz=probe.audio.sample_rate_hz,
            channels=probe.audio.channels,
            file_size_bytes=digest.size_bytes,
            sha256=digest.sha256,
            created_at=utc_now_iso(),
        )
        sidecar = AudioSidecar(file_name=file_name, **metadata.model_dump())
        await store.put_json(sidecar_key, sidecar.model_dump(mode="json"))
    logger.info("stored audio %s: %s, %.1f s", audio_id, sniffed.name, seconds)
    return UploadAudioResponse(audio_url=audio_url_for(audio_id), **metadata.model_dump())


@dataclass(frozen=True)
class StoredAudio:
    audio_id: str
    key: str
    content_type: str
    sidecar: dict[str, Any]
    size_bytes: int | None
    """None when the sidecar survives but the file is gone."""


async def find_audio(raw_id: str, store: ArtifactStore) -> StoredAudio:
    """The song and sidecar for an id; a malformed id never reaches the store (404)."""
    audio_id, sidecar = await find_sidecar(store, AUDIO_FOLDER, raw_id, "audio")
    name = PurePosixPath(str(sidecar.get("file_name", ""))).name
    audio_format = FORMATS.get(PurePosixPath(name).suffix.lstrip("."))
    key = f"{AUDIO_FOLDER}/{name}"
    size = await store.size(key) if name and audio_format else None
    content_type = audio_format.content_type if audio_format else "application/octet-stream"
    return StoredAudio(audio_id, key, content_type, sidecar, size)


async def find_song(raw_id: str, store: ArtifactStore) -> StoredAudio:
    """Like `find_audio`, but a song whose file is gone is a 404 too."""
    stored = await find_audio(raw_id, store)
    if stored.size_bytes is None:
        raise NotFound(f"The file of audio {stored.audio_id} is gone")
    return stored


async def audio_info(raw_id: str, store: ArtifactStore) -> AudioInfo:
    stored = await find_audio(raw_id, store)
    return AudioInfo(audio_id=stored.audio_id, **info_fields(stored.sidecar, stored.size_bytes))
