"""Log lines go to stderr (the uvicorn console), one line each, tagged with the request id."""

import logging
import sys
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(*, debug: bool) -> None:
    """Install one stderr handler on the `backend` logger; idempotent across app factories."""
    logger = logging.getLogger("backend")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    if not any(getattr(handler, "_mv_handler", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(_RequestIdFilter())
        handler._mv_handler = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = True
