"""Log lines go to stderr (the uvicorn console), one line each, tagged with the request id.

No log line shows a key: every record, from any logger (ours, uvicorn's, the SDKs',
asyncio's), is scrubbed as it is made, its traceback and chained causes included, so a
provider that echoes a key back into an exception cannot get it into the log.
"""

import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"
REDACTED = "[redacted]"
_TRACEBACK_FORMATTER = logging.Formatter()


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _scrub_value(value: Any, secrets: tuple[str, ...]) -> Any:
    """A log argument without `secrets`; one that is not a string is replaced by its
    scrubbed text only when that text holds one (a `%d` argument stays a number)."""
    text = value if isinstance(value, str) else str(value)
    if not any(secret in text for secret in secrets):
        return value
    return redact(text, secrets)


def _scrub_record(record: logging.LogRecord, secrets: tuple[str, ...]) -> None:
    """Remove `secrets` from everything a formatter will print of `record`.

    The traceback is rendered here, the way `logging.Formatter` renders it, and cached in
    `exc_text`, which formatters print instead of rendering their own. Arguments are
    scrubbed one by one, so formatters that read them (uvicorn's access log) still work.
    """
    if record.exc_info and not record.exc_text:
        record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text, secrets)
    if record.stack_info:
        record.stack_info = redact(record.stack_info, secrets)
    try:
        message = record.getMessage()
    except Exception:  # a malformed logging call: logging reports it when it formats it
        return
    if not any(secret in message for secret in secrets):
        return
    if isinstance(record.args, tuple):
        record.args = tuple(_scrub_value(arg, secrets) for arg in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {name: _scrub_value(arg, secrets) for name, arg in record.args.items()}
    record.msg = _scrub_value(record.msg, secrets)
    try:
        scrubbed = record.getMessage()
    except Exception:  # an argument changed type: fall back to the rendered message
        scrubbed = message
    if any(secret in scrubbed for secret in secrets):
        record.msg, record.args = redact(message, secrets), ()


class _ScrubbingRecordFactory:
    """The process's log record factory: makes each record as before, then scrubs it."""

    def __init__(self, make_record: Callable[..., logging.LogRecord]) -> None:
        self.make_record = make_record
        self.secrets: tuple[str, ...] = ()

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make_record(*args, **kwargs)
        if self.secrets:
            _scrub_record(record, self.secrets)
        return record


def configure_logging(*, debug: bool, secrets: Iterable[str] = ()) -> None:
    """Install one stderr handler on the `backend` logger, and scrub `secrets` (longest
    first, so a key containing another goes whole) from every record of the process.
    Idempotent across app factories; the latest call's secrets apply."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _ScrubbingRecordFactory):
        factory = _ScrubbingRecordFactory(factory)
        logging.setLogRecordFactory(factory)
    factory.secrets = tuple(sorted(set(filter(None, secrets)), key=len, reverse=True))
    logger = logging.getLogger("backend")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    if not any(getattr(handler, "_mv_handler", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(_RequestIdFilter())
        handler._mv_handler = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = True
