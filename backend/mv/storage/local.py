"""`ArtifactStore` on local files under one root folder (`MV_OUTPUT_DIR`)."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import anyio

from backend.mv.storage.files import (
    ChunkedWriter,
    read_json,
    remove_leftover_temporaries,
    staged_path,
    streaming_atomic_writer,
    write_atomic,
)
from backend.mv.storage.writable import WritableCheck


class LocalStore:
    """Keys are paths relative to `root`; folders are made as writes need them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def local_path(self, key: str) -> Path:
        return self.root / key

    def uri(self, key: str) -> str:
        return str(self.local_path(key))

    async def _path_for_writing(self, key: str) -> Path:
        path = self.local_path(key)
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        return path

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[ChunkedWriter]:
        async with streaming_atomic_writer(await self._path_for_writing(key)) as writer:
            yield writer

    @asynccontextmanager
    async def staging(self, key: str) -> AsyncIterator[Path]:
        async with staged_path(await self._path_for_writing(key)) as temp:
            yield temp

    async def put_bytes(self, key: str, data: bytes, *, replace: bool = False) -> None:
        await write_atomic(await self._path_for_writing(key), data, exclusive=not replace)

    async def put_json(self, key: str, document: Any, *, replace: bool = False) -> None:
        payload = json.dumps(document, indent=2, ensure_ascii=False).encode()
        await self.put_bytes(key, payload + b"\n", replace=replace)

    async def read_bytes(self, key: str) -> bytes | None:
        try:
            return await anyio.Path(self.local_path(key)).read_bytes()
        except FileNotFoundError:
            return None

    async def read_json(self, key: str) -> Any | None:
        return await read_json(self.local_path(key))

    async def size(self, key: str) -> int | None:
        try:
            return (await anyio.Path(self.local_path(key)).stat()).st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await anyio.Path(self.local_path(key)).unlink(missing_ok=True)

    async def claim(self, key: str) -> None:
        marker = anyio.Path(self.local_path(key))
        await marker.parent.mkdir(parents=True, exist_ok=True)
        await marker.touch(exist_ok=False)

    async def remove_folder_if_empty(self, prefix: str) -> None:
        folder = anyio.Path(self.local_path(prefix))
        async for _ in folder.iterdir():
            return
        await folder.rmdir()

    async def remove_leftovers(self) -> int:
        return len(await anyio.to_thread.run_sync(remove_leftover_temporaries, self.root))

    @cached_property
    def _writable(self) -> WritableCheck:
        return WritableCheck(self.root)

    async def check_writable(self, min_free_bytes: int) -> None:
        """A real write under `root` (recreating it if it was removed) and its free space."""
        await self._writable.check(min_free_bytes)
