"""Whether a local folder can take a new artifact now: writable, with enough free space.

Asked before every paid provider call (`ArtifactStore.check_writable`), so a full or
read-only volume is a 507 that costs nothing instead of a paid result that cannot be
stored. One check is a real write and `os.statvfs`, well under a millisecond, in a worker
thread; its answer is reused for `CHECK_VALID_SECONDS`, so a burst of requests costs one.
"""

import os
import time
import uuid
from pathlib import Path

import anyio

from backend.config import MIB
from backend.mv.errors import InsufficientStorage
from backend.mv.storage.files import TMP_SUFFIX

CHECK_VALID_SECONDS = 1.0


def _problem(root: Path, min_free_bytes: int) -> str | None:
    """Why `root` cannot take an artifact, or None. The probe ends in `.tmp`, so one a
    killed process left behind goes with the startup cleanup."""
    probe = root / f".write-probe.{uuid.uuid4().hex}{TMP_SUFFIX}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        with probe.open("xb") as handle:
            handle.write(b"probe")
        probe.unlink()
        stats = os.statvfs(root)
    except OSError as exc:
        return f"The output store is not writable ({exc.strerror or type(exc).__name__})"
    free_bytes = stats.f_bavail * stats.f_frsize
    if free_bytes < min_free_bytes:
        return (
            f"The output store has {free_bytes // MIB} MiB free, less than the "
            f"{min_free_bytes // MIB} MiB required (MV_MIN_FREE_BYTES)"
        )
    return None


class WritableCheck:
    """The last answer about one folder, reused for a second (failures too: a full disk
    under a burst of requests is probed once a second, not once a request)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._answered_at = -CHECK_VALID_SECONDS
        self._answered_for = -1
        self._problem: str | None = None

    async def check(self, min_free_bytes: int) -> None:
        """Raise `InsufficientStorage` unless the folder is writable with the space free."""
        now = time.monotonic()
        if now - self._answered_at >= CHECK_VALID_SECONDS or min_free_bytes != self._answered_for:
            self._problem = await anyio.to_thread.run_sync(_problem, self.root, min_free_bytes)
            self._answered_at, self._answered_for = time.monotonic(), min_free_bytes
        if self._problem is not None:
            raise InsufficientStorage(self._problem)
