"""Each kind of blocking work has threads of its own: a busy kind never starves another."""

import asyncio
import threading

from backend.mv.thread_pools import DECODING, FILE_WRITES


async def test_download_writes_run_while_every_decoding_thread_is_busy() -> None:
    release = threading.Event()
    busy = [asyncio.ensure_future(DECODING.run(release.wait)) for _ in range(DECODING.threads)]
    queued = asyncio.ensure_future(DECODING.run(lambda: "decoded"))
    try:
        assert await asyncio.wait_for(FILE_WRITES.run(lambda: "written"), timeout=5) == "written"
        await asyncio.sleep(0.1)
        assert not queued.done(), "decoding ran beyond its pool's size"
    finally:
        release.set()
        await asyncio.gather(*busy)
    assert await queued == "decoded"
