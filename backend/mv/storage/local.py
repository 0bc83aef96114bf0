"""`ArtifactStore` on local files under one root folder (`MV_OUTPUT_DIR`).

Everything in flight lives in one staging folder under the root (`.staging/`, on the same
filesystem, so publishing stays one atomic link or rename): temporary files (`*.tmp`),
claims (`*.claim`) and pending markers (`*.pending`, one per artifact published inside a
`publishing` block). Startup lists that folder alone, so recovery costs what a crash left
over, never what is stored.
"""

import hashlib
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

from backend.mv.errors import InsufficientStorage
from backend.mv.storage.files import (
    ChunkedWriter,
    make_folders,
    read_json_object,
    staged_path,
    staging_folder,
    streaming_atomic_writer,
    warn_corrupt,
    write_atomic,
    write_json_atomic,
)
from backend.mv.storage.writable import WritableCheck

logger = logging.getLogger(__name__)

CLAIM_SUFFIX = ".claim"
PENDING_SUFFIX = ".pending"


def _is_store_key(key: object) -> bool:
    """A relative key that stays under the root (what a pending marker must name)."""
    if not isinstance(key, str) or not key:
        return False
    path = PurePosixPath(key)
    return not path.is_absolute() and ".." not in path.parts


class LocalStore:
    """Keys are paths relative to `root`; folders are made as writes need them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._staging = staging_folder(root)

    def local_path(self, key: str) -> Path:
        return self.root / key

    def uri(self, key: str) -> str:
        return str(self.local_path(key))

    async def _path_for_writing(self, key: str) -> Path:
        path = self.local_path(key)
        await anyio.to_thread.run_sync(make_folders, path.parent, self._staging)
        return path

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[ChunkedWriter]:
        path = await self._path_for_writing(key)
        async with streaming_atomic_writer(path, self._staging) as writer:
            yield writer

    @asynccontextmanager
    async def staging(self, key: str) -> AsyncIterator[Path]:
        async with staged_path(await self._path_for_writing(key), self._staging) as temp:
            yield temp

    async def put_bytes(self, key: str, data: bytes, *, replace: bool = False) -> None:
        path = await self._path_for_writing(key)
        await write_atomic(path, data, staging=self._staging, exclusive=not replace)

    async def put_json(self, key: str, document: Any, *, replace: bool = False) -> None:
        path = await self._path_for_writing(key)
        await write_json_atomic(path, document, staging=self._staging, exclusive=not replace)

    async def read_bytes(self, key: str) -> bytes | None:
        try:
            return await anyio.Path(self.local_path(key)).read_bytes()
        except FileNotFoundError:
            return None

    async def read_json(self, key: str) -> dict[str, Any] | None:
        return await read_json_object(self.local_path(key), key)

    async def size(self, key: str) -> int | None:
        try:
            return (await anyio.Path(self.local_path(key)).stat()).st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await anyio.Path(self.local_path(key)).unlink(missing_ok=True)

    def _claim_path(self, key: str) -> Path:
        return self._staging / f"{hashlib.sha256(key.encode()).hexdigest()}{CLAIM_SUFFIX}"

    async def claim(self, key: str) -> None:
        def take() -> None:
            make_folders(self.local_path(key).parent, self._staging)
            with self._claim_path(key).open("x") as marker:
                marker.write(key)

        await anyio.to_thread.run_sync(take)

    async def release(self, key: str) -> None:
        await anyio.Path(self._claim_path(key)).unlink(missing_ok=True)

    @asynccontextmanager
    async def publishing(self, key: str, *, sidecar: str) -> AsyncIterator[None]:
        marker = self._staging / f"{uuid.uuid4().hex}{PENDING_SUFFIX}"
        content = json.dumps({"key": key, "sidecar": sidecar})

        def mark() -> None:
            make_folders(self._staging)
            marker.write_text(content)

        try:
            await anyio.to_thread.run_sync(mark)
        except OSError as exc:
            raise InsufficientStorage(
                f"The output store cannot be written ({exc.strerror or type(exc).__name__})"
            ) from exc
        try:
            yield
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._keep_only_with_sidecar, key, sidecar)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.Path(marker).unlink(missing_ok=True)

    def _keep_only_with_sidecar(self, key: str, sidecar: str) -> bool:
        """Remove `key` unless `sidecar` is stored; True when something was removed."""
        if self.local_path(sidecar).exists():
            return False
        path = self.local_path(key)
        if not path.exists():
            return False
        path.unlink(missing_ok=True)
        return True

    def _settle_pending(self, marker: Path) -> None:
        """Finish what a killed process left inside a `publishing` block."""
        try:
            pending = json.loads(marker.read_bytes())
        except (OSError, ValueError):
            pending = None
        if not isinstance(pending, dict) or not all(
            _is_store_key(pending.get(name)) for name in ("key", "sidecar")
        ):
            # The marker is written whole before its block runs, so a broken one means the
            # process died while writing it, before anything could be published.
            warn_corrupt(f"pending marker {marker.name}", "not written whole")
            return
        if self._keep_only_with_sidecar(pending["key"], pending["sidecar"]):
            logger.warning(
                "removed %s: published without its sidecar before a crash", pending["key"]
            )

    def _recover(self) -> int:
        """A store that cannot be written still starts (its generations answer 507): what
        cannot be removed now is logged and left for the next start."""
        try:
            entries = [
                entry for entry in os.scandir(self._staging) if entry.is_file(follow_symlinks=False)
            ]
        except FileNotFoundError:
            return 0
        leftovers = 0
        for entry in entries:
            path = Path(entry.path)
            try:
                if path.suffix == PENDING_SUFFIX:
                    self._settle_pending(path)
                path.unlink(missing_ok=True)
            except OSError as exc:
                logger.warning("cannot remove leftover %s: %s", path.name, exc.strerror or exc)
                continue
            leftovers += 1
        return leftovers

    async def remove_leftovers(self) -> int:
        return await anyio.to_thread.run_sync(self._recover)

    async def remove_folder_if_empty(self, prefix: str) -> None:
        folder = anyio.Path(self.local_path(prefix))
        async for _ in folder.iterdir():
            return
        await folder.rmdir()

    @cached_property
    def _writable(self) -> WritableCheck:
        return WritableCheck(self.root)

    async def check_writable(self, min_free_bytes: int) -> None:
        """A real write under `root` (recreating it if it was removed) and its free space."""
        await self._writable.check(min_free_bytes)
