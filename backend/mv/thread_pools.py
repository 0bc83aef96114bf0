"""Bounded worker-thread pools, one per kind of blocking work, so no kind starves another.

anyio runs every `to_thread.run_sync` on one set of worker threads, and without a
`limiter` each call takes a token of one default limiter of 40. Ten 13 MB reference
images being decoded would then hold threads that the downloads' disk writes wait for,
and 200 downloads writing would queue the image checks behind them. Each kind below has a
limiter of its own; everything else (small file operations through `anyio.Path`, sidecar
and record writes, Starlette's file responses) stays on anyio's default 40.

- `FILE_WRITES`, 16 threads: streamed downloads' writes, sha256 and fsync
  (`ChunkedWriter`), and hashing a file another tool wrote. One per download slot
  (`providers.downloads.DOWNLOAD_SLOTS`): a download has at most one write in flight.
- `DECODING`, 2 threads: base64, image decoding and checks, large JSON request bodies,
  request fingerprints. CPU-bound and mostly holding the interpreter lock: more threads
  than cores would take turns with the event loop for it (4 measured a /health p99 twice
  as long as 2 under ten 13 MB reference images).

Limiters live per event loop (an anyio `RunVar`), as anyio's own default one does, so tests
that each run their own loop never share one.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from anyio.lowlevel import RunVar

T = TypeVar("T")

_LIMITERS: RunVar[dict[str, anyio.CapacityLimiter]] = RunVar("mv_thread_pools")


@dataclass(frozen=True)
class ThreadPool:
    name: str
    threads: int

    def _limiter(self) -> anyio.CapacityLimiter:
        try:
            limiters = _LIMITERS.get()
        except LookupError:
            limiters = {}
            _LIMITERS.set(limiters)
        if self.name not in limiters:
            limiters[self.name] = anyio.CapacityLimiter(self.threads)
        return limiters[self.name]

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on a worker thread, at most `threads` of this kind at once."""
        return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter())


FILE_WRITES = ThreadPool("file_writes", threads=16)
DECODING = ThreadPool("decoding", threads=2)
