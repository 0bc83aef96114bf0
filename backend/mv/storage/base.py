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

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from backend.mv.errors import NotFound
from backend.mv.storage.files import FileDigest
from backend.mv.storage.identity import parse_artifact_id


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
