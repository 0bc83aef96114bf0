"""Local files written atomically: the primitives under `LocalStore` and the service's own
records.

Files are written under a temporary `.tmp` name in the output root's staging folder
(`.staging/`, on the same filesystem as every final name), flushed to disk and linked or
renamed into place, so a reader (or a crash) never sees a partial file under a final name,
and what a crash leaves half-done is all in one folder that startup lists alone.
"""

import hashlib
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

import anyio

from backend.mv.thread_pools import FILE_WRITES

logger = logging.getLogger(__name__)

STAGING_FOLDER = ".staging"
TMP_SUFFIX = ".tmp"
CHUNK_BYTES = 1024 * 1024


def staging_folder(root: Path) -> Path:
    """Where every temporary file under the output `root` is written first. Output folder
    names start with a letter or digit, so no artifact key can reach it."""
    return root / STAGING_FOLDER


def temporary_path(staging: Path) -> Path:
    """A unique `.tmp` name in `staging`."""
    return staging / f"{uuid.uuid4().hex}{TMP_SUFFIX}"


def make_folders(*folders: Path) -> None:
    """Create `folders` and their parents where missing (blocking: call it in a thread)."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


def _publish(temp: Path, final_path: Path) -> None:
    """Give a finished temporary file its final name, never replacing an existing file."""
    os.link(temp, final_path)
    temp.unlink()


def _write_bytes_durably(path: Path, data: bytes, *, staging: Path, exclusive: bool) -> None:
    temp = temporary_path(staging)
    try:
        with temp.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            _publish(temp, path)
        else:
            temp.replace(path)
    finally:
        with suppress(FileNotFoundError):
            temp.unlink()


async def write_atomic(path: Path, data: bytes, *, staging: Path, exclusive: bool = False) -> None:
    """Write `data` to `path` atomically (staged in `staging`), off the event loop.

    With `exclusive=True` an existing file is never replaced (`FileExistsError` instead):
    that is how two writers racing for one name find out.
    """
    await anyio.to_thread.run_sync(
        lambda: _write_bytes_durably(path, data, staging=staging, exclusive=exclusive)
    )


async def write_json_atomic(
    path: Path, document: Any, *, staging: Path, exclusive: bool = False
) -> None:
    payload = json.dumps(document, indent=2, ensure_ascii=False).encode()
    await write_atomic(path, payload + b"\n", staging=staging, exclusive=exclusive)


class FileDigest:
    """A file's size and sha256, accumulated piece by piece."""

    def __init__(self) -> None:
        self.size_bytes = 0
        self._hash = hashlib.sha256()

    def update(self, chunk: bytes | bytearray) -> None:
        self.size_bytes += len(chunk)
        self._hash.update(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    @classmethod
    async def of_file(cls, path: Path) -> "FileDigest":
        """The digest of a file written by someone else (e.g. ffmpeg), read in a thread."""
        digest = cls()

        def read_in_chunks() -> None:
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    digest.update(chunk)

        await FILE_WRITES.run(read_in_chunks)
        return digest


class ChunkedWriter:
    """Writes a stream of pieces to a file with flat memory and little event-loop work.

    Pieces are collected, uncopied, until they add up to `CHUNK_BYTES`, then written and
    hashed in one worker-thread hop (the `FILE_WRITES` pool): `write` and sha256 both
    release the GIL, so a download's disk and hashing work runs beside the event loop
    instead of on it.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.digest = FileDigest()

    def _write_and_hash(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self._handle.write(piece)
            self.digest.update(piece)

    async def _flush(self) -> None:
        pieces, self._pending, self._pending_bytes = self._pending, [], 0
        await FILE_WRITES.run(self._write_and_hash, pieces)

    async def write(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_bytes += len(piece)
        if self._pending_bytes >= CHUNK_BYTES:
            await self._flush()

    async def finish(self) -> None:
        """Write what is left and make it durable."""
        if self._pending:
            await self._flush()
        await FILE_WRITES.run(lambda: (self._handle.flush(), os.fsync(self._handle.fileno())))


@asynccontextmanager
async def staged_path(final_path: Path, staging: Path) -> AsyncIterator[Path]:
    """A temporary path in `staging` to fill; published as `final_path` when the block
    succeeds.

    On any error the temporary file is removed and `final_path` is never created; an
    existing `final_path` is never replaced (`FileExistsError`).
    """
    temp = temporary_path(staging)
    try:
        yield temp
        await anyio.to_thread.run_sync(_publish, temp, final_path)
    finally:
        with suppress(FileNotFoundError):
            await anyio.Path(temp).unlink()


@asynccontextmanager
async def chunked_file(path: Path) -> AsyncIterator[ChunkedWriter]:
    """A `ChunkedWriter` on a new file at `path`, made durable when the block succeeds and
    closed however it ends."""
    handle = await anyio.to_thread.run_sync(path.open, "xb")
    try:
        writer = ChunkedWriter(handle)
        yield writer
        await writer.finish()
    finally:
        await anyio.to_thread.run_sync(handle.close)


@asynccontextmanager
async def streaming_atomic_writer(final_path: Path, staging: Path) -> AsyncIterator[ChunkedWriter]:
    """A `ChunkedWriter` on a staged file; see `staged_path` for the guarantees."""
    async with staged_path(final_path, staging) as temp, chunked_file(temp) as writer:
        yield writer


def sha256_of_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def warn_corrupt(name: str, problem: str) -> None:
    """Log a stored document that cannot be used: its name and what is wrong, never its
    content (which may hold anything, a client's text included)."""
    logger.warning("ignoring corrupt %s (%s): treated as missing", name, problem)


async def read_json_object(path: Path, name: str) -> dict[str, Any] | None:
    """The JSON object stored at `path`, or None when there is none.

    What is there but is not a JSON object (truncated, not UTF-8, a list) is logged under
    `name` and treated as missing too: one bad file must not turn every request for it into
    a 500 forever.
    """
    try:
        data = await anyio.Path(path).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        warn_corrupt(name, f"unreadable ({exc.strerror or type(exc).__name__})")
        return None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        warn_corrupt(name, "not valid JSON")
        return None
    if not isinstance(document, dict):
        warn_corrupt(name, "not a JSON object")
        return None
    return document
