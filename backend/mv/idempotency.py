"""`Idempotency-Key` for the POST endpoints: a repeated request pays once.

A key's first successful answer is stored on disk beside the outputs (so it survives a
restart) and replayed for 24 hours to the same request body; the same key with another body
is a 409. A repeat that arrives while the first is still running waits for it. A failed
request stores nothing, so the client may retry with the same key. Keys are scoped per
endpoint and stored only as hashes. A record that cannot be written (after retries) is kept
in memory instead, so the answer still goes out and a repeat to this process still gets it
without paying again.
"""

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from backend.mv.errors import Conflict, ValidationFailed
from backend.mv.storage.base import keep_paid_result
from backend.mv.storage.files import (
    make_folders,
    read_json_object,
    staging_folder,
    warn_corrupt,
    write_json_atomic,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_FOLDER = "idempotency"
REPLAY_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255
RECORD_FIELDS = ("request_sha256", "stored_at", "body")

JsonBody = dict[str, Any]


def request_fingerprint(body: JsonBody) -> str:
    """A stable hash of a request body: same fields and values, same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        message = f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        raise ValidationFailed.about("Idempotency-Key", message)


def _conflict() -> Conflict:
    return Conflict("This Idempotency-Key was already used with a different request body")


def _replayable(record: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    """A stored record within its replay window, or None. A record without the fields this
    module writes (`request_sha256`, `stored_at`, `body`) is logged and treated as absent,
    so the request runs again and its answer replaces the record."""
    if record is None:
        return None
    fingerprint, stored_at, body = (record.get(field) for field in RECORD_FIELDS)
    if (
        not isinstance(fingerprint, str)
        or not isinstance(stored_at, int | float)
        or isinstance(stored_at, bool)
        or not isinstance(body, dict)
    ):
        warn_corrupt(name, "missing or mistyped fields")
        return None
    return record if time.time() - stored_at < REPLAY_SECONDS else None


def _log_unawaited_failure(task: asyncio.Task[JsonBody]) -> None:
    """Retrieve a keyed generation's failure even when all its callers have gone (asyncio
    would otherwise complain without a request id); the callers' answers carry the details."""
    if not task.cancelled() and (failure := task.exception()) is not None:
        logger.warning("keyed generation failed with %s", type(failure).__name__)


class IdempotencyStore:
    def __init__(self, output_root: Path) -> None:
        self.root = output_root / IDEMPOTENCY_FOLDER
        self._staging = staging_folder(output_root)
        self._in_flight: dict[Path, tuple[str, asyncio.Task[JsonBody]]] = {}
        self._unwritten: dict[Path, dict[str, Any]] = {}
        """Records that could not be written to disk, by the path they belong at."""

    def _record_path(self, endpoint: str, key: str, owner: str) -> Path:
        digest = hashlib.sha256(f"{owner}\n{key}".encode()).hexdigest()
        return self.root / endpoint / f"{digest}.json"

    async def run_once(
        self,
        endpoint: str,
        key: str,
        fingerprint: str,
        produce: Callable[[], Awaitable[JsonBody]],
        *,
        owner: str = "",
    ) -> JsonBody:
        """The stored answer for `key`, the in-flight one's, or `produce()`'s (then stored).

        Keys are scoped per endpoint and per `owner` (the caller's API key, hashed, when
        authentication is on), so two clients choosing the same key never see each other's
        answers.

        `produce` runs as its own task: a client that disconnects, or a caller that is
        cancelled, does not stop the paid work, and its result is still stored.
        """
        _check_key(key)
        path = self._record_path(endpoint, key, owner)
        name = f"idempotency record {endpoint}/{path.name}"
        record = _replayable(self._unwritten.get(path) or await read_json_object(path, name), name)
        if record is not None:
            if record["request_sha256"] != fingerprint:
                raise _conflict()
            return record["body"]
        if path in self._in_flight:
            in_flight_fingerprint, task = self._in_flight[path]
            if in_flight_fingerprint != fingerprint:
                raise _conflict()
            return await asyncio.shield(task)
        task = asyncio.get_running_loop().create_task(
            self._produce_and_store(path, fingerprint, produce)
        )
        self._in_flight[path] = (fingerprint, task)
        task.add_done_callback(lambda _: self._in_flight.pop(path, None))
        task.add_done_callback(_log_unawaited_failure)
        return await asyncio.shield(task)

    def prune_expired(self) -> int:
        """Delete records past their replay window (they may hold megabytes of base64);
        run at startup. Returns how many went."""
        cutoff = time.time() - REPLAY_SECONDS
        expired = [path for path in self.root.glob("*/*.json") if path.stat().st_mtime < cutoff]
        for path in expired:
            path.unlink(missing_ok=True)
        return len(expired)

    async def cancel_running(self) -> None:
        """At shutdown, after the grace period: stop generations whose callers are gone, so
        their upstream jobs are cancelled instead of left running (and billed)."""
        tasks = [task for _, task in self._in_flight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _produce_and_store(
        self, path: Path, fingerprint: str, produce: Callable[[], Awaitable[JsonBody]]
    ) -> JsonBody:
        body = await produce()
        record = {"request_sha256": fingerprint, "stored_at": time.time(), "body": body}

        async def write() -> None:
            await anyio.to_thread.run_sync(make_folders, path.parent, self._staging)
            await write_json_atomic(path, record, staging=self._staging)

        if not await keep_paid_result(write, what=f"the idempotency record {path.name}"):
            self._unwritten[path] = record
        return body
