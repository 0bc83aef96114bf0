"""`python -m backend`: serve the API with uvicorn, as in production.

One process per job store on SQLite (the store refuses a second). Binds to 127.0.0.1
unless told otherwise, gives running jobs `MV_SHUTDOWN_GRACE_SECONDS` to finish on SIGTERM
(what is still running resumes at the next start; a request still waiting is answered 503
with its job id), and warns when it listens beyond this machine with authentication off.
"""

import argparse
import ipaddress
import logging
import math
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from backend.api.connections import (
    KEEP_ALIVE_TIMEOUT_SECONDS,
    GuardedH11Protocol,
    raise_open_file_limit,
)
from backend.config import Settings
from backend.jobs.submission import Shutdown
from backend.logging_setup import configure_logging

logger = logging.getLogger("backend")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    arguments = parser.parse_args()

    try:
        settings = Settings()
    except ValidationError as exc:
        # One readable message instead of a traceback; values are never shown.
        sys.exit(f"cannot start: invalid settings: {exc}")
    configure_logging(debug=settings.mv_debug_mode, secrets=settings.secrets)
    if not _is_loopback(arguments.host) and not settings.api_keys:
        logger.warning(
            "listening on %s with authentication off: anyone who can reach this port can "
            "spend your provider credit; set MV_API_KEYS",
            arguments.host,
        )
    before, after = raise_open_file_limit()
    logger.info("open-file limit: %d (was %d)", after, before)
    from backend.main import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=arguments.host,
        port=arguments.port,
        loop="asyncio",
        http=GuardedH11Protocol,
        h11_max_incomplete_event_size=settings.mv_max_header_bytes,
        timeout_graceful_shutdown=math.ceil(settings.mv_shutdown_grace_seconds),
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT_SECONDS,
    )
    _ShutdownAwareServer(config, app.state.shutdown).run()


class _ShutdownAwareServer(uvicorn.Server):
    """Tells the app the moment SIGTERM (or Ctrl-C) arrives, so that requests still waiting
    for a job answer 503 with the job's id before the grace period cuts them off."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self._shutdown = shutdown

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._shutdown.begin()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    main()
