"""The clips every provider serves, and the response that streams generated files."""

import asyncio
import hashlib
import struct
from collections.abc import Iterator, Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backend.testing.fake_upstream.faults import PauseDownload, abort_connection

DEFAULT_CLIP_BYTES = 256 * 1024
MIN_CLIP_BYTES = 1024
CHUNK_BYTES = 1024 * 1024


def clip_filler(size: int) -> bytes:
    """Pseudo-random bytes shared by every clip, built once per clip size."""
    block = b"".join(
        hashlib.sha256(b"fake-upstream-clip" + i.to_bytes(4, "big")).digest() for i in range(128)
    )
    return (block * (size // len(block) + 1))[:size]


def clip_head(file_id: str, total_bytes: int) -> bytes:
    """ISO-BMFF boxes (`ftyp`, a `free` box naming the id, `mdat` header) opening a clip."""
    ftyp = struct.pack(">I4s4sI", 32, b"ftyp", b"isom", 0x200) + b"isomiso2avc1mp41"
    tag = f"fake-upstream clip {file_id}".encode()
    free = struct.pack(">I4s", 8 + len(tag), b"free") + tag
    mdat_bytes = total_bytes - len(ftyp) - len(free)
    if mdat_bytes < 8:
        raise ValueError(f"clip of {total_bytes} bytes is too small for file id {file_id!r}")
    return ftyp + free + struct.pack(">I4s", mdat_bytes, b"mdat")


class MediaResponse(Response):
    """Streams in-memory bytes in CHUNK_BYTES slices without copying them.

    Clips share one precomputed buffer, so serving many large downloads at once costs no
    memory or CPU beyond TLS. `drop_after_bytes` cuts the body short and aborts; `pause`
    holds the rest of the body back for a while.
    """

    def __init__(
        self,
        parts: Sequence[bytes | memoryview],
        media_type: str,
        drop_after_bytes: int | None,
        pause: PauseDownload | None = None,
    ) -> None:
        super().__init__(media_type=media_type)
        self._parts = parts
        self._drop_after_bytes = drop_after_bytes
        self._pause = pause
        self.headers["content-length"] = str(sum(len(part) for part in parts))

    def _chunks(self) -> Iterator[memoryview]:
        for part in self._parts:
            view = memoryview(part)
            for start in range(0, len(view), CHUNK_BYTES):
                yield view[start : start + CHUNK_BYTES]

    async def __call__(self, _scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        budget = self._drop_after_bytes
        sent = 0
        for chunk in self._chunks():
            if self._pause is not None and sent <= self._pause.after_bytes < sent + len(chunk):
                await asyncio.sleep(self._pause.seconds)
            sent += len(chunk)
            if budget is not None and len(chunk) > budget:
                if budget:
                    head = chunk[:budget]
                    await send({"type": "http.response.body", "body": head, "more_body": True})
                await abort_connection(receive)
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if budget is not None:
                budget -= len(chunk)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
