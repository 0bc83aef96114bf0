"""The job store's database: the URL, the engine, and the one-process rule for SQLite.

DBOS's system tables and the service's own live in the same database (`MV_DATABASE_URL`,
by default a SQLite file beside the outputs). A SQLite file serves exactly one process:
two would each enforce their own caps and each recover the other's jobs, so a second
process on the same file is refused at startup with a message naming the file.
"""

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from backend.config import Settings
from backend.mv.configuration import ConfigError

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000


def database_url(settings: Settings) -> str:
    return settings.mv_database_url or f"sqlite:///{settings.mv_output_dir / 'mv.sqlite3'}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a `sqlite:///` URL, or None for any other database."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    """IMMEDIATE transactions, as DBOS uses: a writer takes the lock when it begins, so two
    writers wait for each other (busy timeout) instead of failing on a lock upgrade."""
    dbapi_connection.isolation_level = "IMMEDIATE"  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str) -> sa.Engine:
    if sqlite_path(url) is not None:
        engine = sa.create_engine(url, pool_size=4, max_overflow=4)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"), pool_size=8, max_overflow=0
    )


@contextmanager
def one_process(url: str) -> Iterator[None]:
    """Hold the SQLite file for this process (an advisory lock on `<file>.lock`, released
    when the process ends, however it ends); nothing for other databases."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another process is already serving the job store {path}: a SQLite job store "
                "serves one process (use MV_DATABASE_URL=postgresql://... for several)"
            ) from None
        yield
    finally:
        os.close(descriptor)
