"""Pure ASGI middleware: request ids, CORS, the catch-all 500, body size limit and API-key
authentication.

Pure ASGI (not `BaseHTTPMiddleware`) so that streamed responses and long-held requests pass
through without buffering or an extra task per request.
"""

import hashlib
import hmac
import logging
import re
import uuid

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.errors import error_response
from backend.logging_setup import request_id_var
from backend.mv.errors import MVError, PayloadTooLarge, Unauthorized, ValidationFailed

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
CALLER_STATE = "caller"
"""`request.state.caller`: who is calling, as a hash of their API key ("" without auth)."""
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""The client ids echoed: nothing that could end a log field (spaces, `=`, quotes) or a
header, so a client cannot forge fields in our log lines."""


def caller_id(api_key: str | None) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:32] if api_key else ""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _client_request_id(scope: Scope) -> str | None:
    """The client's X-Request-ID when it matches `CLIENT_REQUEST_ID`; else we make our own."""
    raw = _header(scope, REQUEST_ID_HEADER)
    return raw if raw is not None and CLIENT_REQUEST_ID.fullmatch(raw) else None


async def _send_error(scope: Scope, receive: Receive, send: Send, error: MVError) -> None:
    await error_response(error)(scope, receive, send)


class RequestIdMiddleware:
    """Gives every request an id (the client's X-Request-ID, echoed when well-formed, or a
    new one) and puts it on every response and log line. Outermost, so that even the
    answers CORS gives by itself carry it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _client_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (key, value)
                    for key, value in message.get("headers", [])
                    if key.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)


class ErrorShapeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, except that a refused preflight is a 400 `VALIDATION_ERROR` in the
    error shape (Starlette answers plain text), with the headers Starlette would send."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in {"content-length", "content-type"}
        }
        return error_response(ValidationFailed(bytes(response.body).decode(), headers=headers))


class UnexpectedErrorMiddleware:
    """Turns an unexpected exception into the documented 500 (the traceback goes to the
    log, never to the body). Inside CORS, so a browser can read that answer too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception:
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not response_started:
                await _send_error(scope, receive, send, MVError("Unexpected server error"))


class BodySizeLimitMiddleware:
    """Refuses request bodies above `max_bytes` with 413, before they are read whole.

    A declared Content-Length is checked up front; a chunked body is counted as it arrives
    and the request is cut off at the limit, whatever the route would have answered.
    `limits_by_path` gives single paths a limit of their own (an audio upload is larger
    than any JSON body; its route enforces its exact limit while reading).
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, limits_by_path: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits_by_path = limits_by_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limits_by_path.get(scope["path"], self.max_bytes)

        def too_large() -> PayloadTooLarge:
            return PayloadTooLarge(f"Request body exceeds the limit of {max_bytes} bytes")

        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _send_error(scope, receive, send, too_large())
            return

        received = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise too_large()
            return message

        async def send_unless_exceeded(message: Message) -> None:
            if not exceeded:
                await send(message)

        try:
            await self.app(scope, counting_receive, send_unless_exceeded)
        except PayloadTooLarge:
            if not exceeded:
                raise
        if exceeded:
            await _send_error(scope, receive, send, too_large())


class ApiKeyMiddleware:
    """When keys are configured, `/api/` routes need `Authorization: Bearer <key>` or
    `X-API-Key: <key>`; `/`, `/health` and the docs stay open."""

    def __init__(self, app: ASGIApp, *, api_keys: frozenset[str]) -> None:
        self.app = app
        self.api_keys = [key.encode() for key in api_keys]

    def _presented_key(self, scope: Scope) -> str | None:
        authorization = _header(scope, b"authorization") or ""
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        return _header(scope, b"x-api-key")

    def _accepts(self, presented: str | None) -> bool:
        if not presented:
            return False
        candidate = presented.encode()
        return any(hmac.compare_digest(candidate, key) for key in self.api_keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        needs_key = scope["type"] == "http" and scope["path"].startswith("/api/")
        if needs_key:
            presented = self._presented_key(scope)
            if not self._accepts(presented):
                error = Unauthorized(
                    "A valid API key is required (Authorization: Bearer or X-API-Key)"
                )
                await _send_error(scope, receive, send, error)
                return
            scope.setdefault("state", {})[CALLER_STATE] = caller_id(presented)
        await self.app(scope, receive, send)
