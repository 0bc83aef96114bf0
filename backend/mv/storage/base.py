"""The one interface through which every artifact and sidecar is written and read.

Keys are relative, `/`-separated names (`videos/<id>.mp4`, `videos/<id>.json`) built only
from parsed ids and fixed folder names, never from a client's string. Every write is atomic:
nothing is visible under a final key until it is whole, and a write never replaces an
existing artifact unless it says so (`replace=True`), which is how two writers racing for
one key find out (`FileExistsError`). An artifact and its sidecar are published together
(`publishing`): a crash between the two leaves a marker that the next startup settles, so no
artifact is ever left stored without its sidecar. Local files are the implementation today;
object storage is another class with the same methods (markers and claims as small objects
under one prefix, claims as conditional writes).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from backend.mv.errors import InsufficientStorage, NotFound
from backend.mv.storage.files import FileDigest
from backend.mv.storage.identity import parse_artifact_id

logger = logging.getLogger(__name__)

T = TypeVar("T")

FREE_WORK_ATTEMPTS = 2
PAID_WRITE_PAUSES_SECONDS = (0.2, 1.0, 3.0)
"""Between the attempts of a write that keeps a paid result: four attempts in about 4 s."""


class ArtifactWriter(Protocol):
    """A stream being written to one key; `digest` is its size and sha256 so far."""

    digest: FileDigest

    async def write(self, piece: bytes) -> None: ...


class ArtifactStore(Protocol):
    def uri(self, key: str) -> str:
        """What answers show as the artifact's location (an absolute path for local files)."""
        ...

    def local_path(self, key: str) -> Path:
        """The file that holds `key`, for the media routes to serve with Range."""
        ...

    def writer(self, key: str) -> AbstractAsyncContextManager[ArtifactWriter]:
        """Stream pieces to `key`, published when the block succeeds; on any error nothing
        is left under `key`. Memory stays flat whatever the size."""
        ...

    def staging(self, key: str) -> AbstractAsyncContextManager[Path]:
        """A local file to fill by other means (Pillow, ffmpeg), published as `key` when the
        block succeeds."""
        ...

    async def put_bytes(self, key: str, data: bytes, *, replace: bool = False) -> None: ...

    async def put_json(self, key: str, document: Any, *, replace: bool = False) -> None: ...

    async def read_bytes(self, key: str) -> bytes | None:
        """The stored bytes, or None when nothing is stored under `key`."""
        ...

    async def read_json(self, key: str) -> dict[str, Any] | None:
        """The JSON object stored under `key`; None when there is none, or when what is
        stored is not a JSON object (logged as a warning naming `key`, never the content)."""
        ...

    async def size(self, key: str) -> int | None:
        """The stored size in bytes, or None when nothing is stored under `key`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` if it exists."""
        ...

    async def claim(self, key: str) -> None:
        """Reserve `key` for one writer, failing with `FileExistsError` when it is already
        reserved (a reservation two requests cannot both win); `NotADirectoryError` or
        `FileExistsError` when a folder on the way to `key` is a file. Nothing appears
        under `key` itself; a process that dies holding a claim loses it at the next
        startup (`remove_leftovers`)."""
        ...

    async def release(self, key: str) -> None:
        """Drop a claim taken with `claim`, if it is held."""
        ...

    def publishing(self, key: str, *, sidecar: str) -> AbstractAsyncContextManager[None]:
        """The block that stores the artifact `key` and then its `sidecar`.

        When the block fails, `key` is removed at once unless `sidecar` was stored; when
        the process dies inside it, the next startup does the same (`remove_leftovers`).
        `key` must be fresh (a new id): the block owns it.
        """
        ...

    async def remove_folder_if_empty(self, prefix: str) -> None:
        """Drop a folder that a failure left empty (object stores have none to drop)."""
        ...

    async def check_writable(self, min_free_bytes: int) -> None:
        """Raise `InsufficientStorage` (507) unless a new artifact can be stored now: the
        store accepts writes and has at least `min_free_bytes` free. Called before every
        paid provider call; cheap enough for that (answers may be reused for a second)."""
        ...

    async def remove_leftovers(self) -> int:
        """At startup, before serving: settle what a killed process left half-done
        (temporary files, claims, artifacts whose sidecar was never stored), looking only
        at what was in flight, never at every stored artifact; returns how many leftovers
        went."""
        ...


async def find_sidecar(
    store: ArtifactStore, folder: str, raw_id: str, kind: str
) -> tuple[str, dict[str, Any]]:
    """The canonical id and sidecar (`<folder>/<id>.json`) of a stored artifact, or `NotFound`.

    The id is parsed before any key is built, so a malformed or hostile id never reaches
    the store.
    """
    artifact_id = parse_artifact_id(raw_id)
    if artifact_id is None:
        raise NotFound(f"No {kind} with id {raw_id[:64]!r}")
    sidecar = await store.read_json(f"{folder}/{artifact_id}.json")
    if sidecar is None:
        raise NotFound(f"No {kind} with id {artifact_id}")
    return artifact_id, sidecar


async def keep_paid_result(write: Callable[[], Awaitable[None]], *, what: str) -> bool:
    """Run `write`, which stores part of a result already paid for (a sidecar, an answer
    record), again after a pause when it fails; whether it was stored in the end.

    Never raises the write's `OSError`: once the provider is paid, the client gets its
    answer whatever the disk does, and each failure is logged with `what` so an operator
    can restore what is missing.
    """
    attempts = len(PAID_WRITE_PAUSES_SECONDS) + 1
    for attempt in range(1, attempts + 1):
        try:
            await write()
            return True
        except OSError as exc:
            if attempt == attempts:
                logger.error("could not store %s after %d attempts: %r", what, attempts, exc)
                break
            pause = PAID_WRITE_PAUSES_SECONDS[attempt - 1]
            logger.warning("storing %s failed (%r); trying again in %gs", what, exc, pause)
        await asyncio.sleep(pause)
    return False


async def make_and_store(
    store: ArtifactStore, key: str, make: Callable[[Path], Awaitable[T]], *, backend: str
) -> T:
    """`make(path)` fills a staged file, published as `key`; for work that costs nothing to
    redo (mock media). When storing fails (say, the output folder was removed meanwhile),
    it is made again in a fresh staged file, up to `FREE_WORK_ATTEMPTS`, then 507."""
    attempt = 1
    while True:
        try:
            async with store.staging(key) as temp:
                return await make(temp)
        except OSError as exc:
            if attempt >= FREE_WORK_ATTEMPTS:
                raise InsufficientStorage.while_storing(exc, backend=backend) from exc
            logger.warning("storing %s failed (%r); making it again", key, exc)
            attempt += 1
