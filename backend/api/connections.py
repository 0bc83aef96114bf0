"""Connection limits below the ASGI app: how large a request's head may be, and how long a
client may take to send its request.

The app sees a request only once its head (request line and headers) is complete, so a head
that never ends, or arrives a byte at a time, can only be refused in the HTTP protocol
uvicorn runs for each connection. `GuardedH11Protocol` is uvicorn's h11 protocol with:

- a head larger than uvicorn's `h11_max_incomplete_event_size` (`MV_MAX_HEADER_BYTES`):
  h11 stops buffering it at that size (plus one socket read), and the client gets 431
  `HEADERS_TOO_LARGE`;
- deadlines: a request's head must be complete `HEADER_TIMEOUT_SECONDS` after its first
  byte (after the connection opened, for a connection's first request), its body
  `BODY_TIMEOUT_SECONDS` after the head. A client that misses one gets 408
  `REQUEST_TIMEOUT`, or a plain close when it has sent nothing of a request yet. Waiting for
  the answer is not limited: a generation may hold its request for
  `MV_GENERATION_TIMEOUT_SECONDS`. Idle kept-alive connections are uvicorn's own
  `timeout_keep_alive` (`KEEP_ALIVE_TIMEOUT_SECONDS`);
- every refusal (a malformed request's 400 too) in the service's JSON error shape, with a
  request id. The connection is then half-closed and what the client still sends is read and
  dropped for a moment, so that a client still sending reads the answer, not a reset.

The measurements behind h11 and these numbers are in `.devdocs/reliability.md`.
"""

import asyncio
import enum
import http
import logging
import resource
import uuid
from typing import Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from backend.api.errors import error_response
from backend.api.middleware import REQUEST_ID_HEADER
from backend.logging_setup import request_id_var
from backend.mv.errors import HeadersTooLarge, MVError, RequestTimeout, ValidationFailed

logger = logging.getLogger(__name__)

HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 30.0
KEEP_ALIVE_TIMEOUT_SECONDS = 5
LINGER_SECONDS = 2.0
"""How long a refused connection keeps reading (and dropping) what its client still sends."""
LINGER_MAX_BYTES = 1024 * 1024
"""...and at most this much: a client that sends more is cut off, answer read or not."""
HEAD_TOO_LARGE_HINT = 431
"""h11's `error_status_hint` for a head that outgrew `max_incomplete_event_size`."""


class _Phase(enum.Enum):
    HEAD = "head"
    BODY = "body"


class _HeadLimitConnection(h11.Connection):
    """An h11 connection that refuses any head over `max_head_bytes` and remembers why it
    failed (uvicorn answers every h11 error with the same plain-text 400).

    h11 itself limits only a head still incomplete after a socket read, so a larger head that
    arrives in one read (up to 256 KiB) would pass: the size of each complete head is checked
    here too, from what h11 consumed to parse it.
    """

    def __init__(self, max_head_bytes: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self.max_head_bytes = max_head_bytes
        self.head_too_large = False

    def next_event(self) -> Any:
        held = len(self._receive_buffer)  # h11 has no public size of what it holds
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.head_too_large = exc.error_status_hint == HEAD_TOO_LARGE_HINT
            raise
        if isinstance(event, h11.Request):
            head_bytes = held - len(self._receive_buffer)
            if head_bytes > self.max_head_bytes:
                self.head_too_large = True
                raise h11.RemoteProtocolError(
                    f"head of {head_bytes} bytes", error_status_hint=HEAD_TOO_LARGE_HINT
                )
        return event


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with head-size and send deadlines; pass it as `http=`."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = config.h11_max_incomplete_event_size or (
            DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        )
        self.conn = _HeadLimitConnection(self.max_head_bytes)
        self._phase: _Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._request_started = False
        """Whether any byte of the request whose head is awaited has arrived."""
        self._lingering = False
        self._dropped_bytes = 0

    # ---- uvicorn's hooks

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start(_Phase.HEAD)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._drop(len(data))
            return
        if self.conn.their_state is h11.IDLE:
            if self._phase is None:  # the next request on a kept-alive connection
                self._start(_Phase.HEAD)
            self._request_started = True
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def shutdown(self) -> None:
        """A refused connection has nothing left to finish, and its h11 state may be mid-request
        (a head refused for its size was parsed): close it rather than ask h11 to."""
        if self._lingering:
            self.transport.close()
        else:
            super().shutdown()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to anything h11 refuses, here in the error shape."""
        if self.conn.head_too_large:
            self._refuse(
                HeadersTooLarge(
                    f"The request line and headers exceed the limit of {self.max_head_bytes} bytes"
                )
            )
        else:
            self._refuse(ValidationFailed(msg))

    # ---- deadlines

    def _start(self, phase: _Phase) -> None:
        self._cancel_deadline()
        self._phase = phase
        self._request_started = False
        seconds = HEADER_TIMEOUT_SECONDS if phase is _Phase.HEAD else BODY_TIMEOUT_SECONDS
        self._deadline = self.loop.call_later(seconds, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = None

    def _follow_request(self) -> None:
        """Move the deadline along with what h11 has parsed: a head under way keeps its
        deadline, a body under way gets one, a complete request has none."""
        if self._lingering:
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._phase is not _Phase.BODY:
                self._start(_Phase.BODY)
        elif not (state is h11.IDLE and self._phase is _Phase.HEAD):
            self._cancel_deadline()

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._phase is _Phase.HEAD and not self._request_started:
            self._cancel_deadline()
            self.transport.close()  # nothing was asked, so nothing to answer
            return
        what, seconds = (
            ("headers", HEADER_TIMEOUT_SECONDS)
            if self._phase is _Phase.HEAD
            else ("body", BODY_TIMEOUT_SECONDS)
        )
        self._refuse(RequestTimeout(f"The request {what} did not arrive within {seconds:g} s"))

    # ---- refusals

    def _refuse(self, error: MVError) -> None:
        """Answer `error` in the JSON shape and close. The app, if it already has the request,
        sees the client as gone; if it has begun answering that request, the connection is
        closed without a word (a second answer would corrupt the first)."""
        reading_head = self._phase is _Phase.HEAD
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        answered = not reading_head and self.cycle is not None and self.cycle.response_started
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if answered:
            self.transport.close()
            return
        token = request_id_var.set(uuid.uuid4().hex)
        try:
            # A timeout is what a slow-client attack produces by the thousand: not a line each.
            level = logging.DEBUG if isinstance(error, RequestTimeout) else logging.INFO
            client = self.client[0] if self.client else "?"
            logger.log(level, "refused %s from %s: %s", error.error_code, client, error.message)
            self.transport.write(self._answer(error))
        finally:
            request_id_var.reset(token)
        self._lingering = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _answer(self, error: MVError) -> bytes:
        """The whole HTTP answer, written by hand: h11's state is past helping (it failed, or
        is waiting for a body that will not come)."""
        response = error_response(error)
        status = http.HTTPStatus(error.status_code)
        headers = [
            *self.server_state.default_headers,
            *response.raw_headers,
            (b"connection", b"close"),
            (REQUEST_ID_HEADER, request_id_var.get().encode()),
        ]
        lines = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
        lines += [name + b": " + value for name, value in headers]
        return b"\r\n".join(lines) + b"\r\n\r\n" + response.body

    def _drop(self, size: int) -> None:
        self._dropped_bytes += size
        if self._dropped_bytes > LINGER_MAX_BYTES:
            self.transport.close()


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns (before, after).

    Every connection is a file descriptor, and so is every upstream connection and file a
    paid generation needs: at the usual soft limit of 1024, a thousand idle clients are
    enough to make a paid download fail.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        logger.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
        return soft, soft
    return soft, hard
