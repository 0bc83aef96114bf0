"""A fake Gemini and Replicate upstream that speaks the providers' real wire protocols.

Tests and the benchmark point the real `google-genai` (2.x) and `replicate` SDKs at this
server instead of mocking them, so everything between our code and the socket (URL
building, auth headers, JSON parsing, retries, TLS) is exercised for real. It serves HTTPS
on 127.0.0.1 with a throwaway CA from `trustme`; clients trust it through `SSL_CERT_FILE`,
which httpx and google-genai read when a client is constructed.

Generations take `latency_seconds` of wall-clock time; faults are scripted per route with
`FakeUpstream.inject`. The server runs uvicorn on its own thread and event loop, so it is
independent of the per-test event loops of pytest-asyncio. Run it as a process for the
benchmark: `python -m backend.testing.fake_upstream --port 0 --cert-dir DIR`.
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import io
import json
import re
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self, get_args

import trustme
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

Route = Literal[
    "gemini.generate_content",
    "gemini.predict_long_running",
    "gemini.operation",
    "gemini.download",
    "replicate.create",
    "replicate.get",
    "replicate.cancel",
    "replicate.download",
]
ROUTES: tuple[Route, ...] = get_args(Route)

DEFAULT_CLIP_BYTES = 256 * 1024
MIN_CLIP_BYTES = 1024
CHUNK_BYTES = 1024 * 1024
DEFAULT_SCENE_COUNT = 4
IMAGE_SHORT_SIDE_PX = 64
REPLICATE_MAX_WAIT_SECONDS = 60
SCENE_COUNT_PATTERN = re.compile(r"exactly (\d+) scenes", re.IGNORECASE)

SENSITIVE_CONTENT_ERROR = (
    "Prediction failed: The input or output was flagged as sensitive. "
    "Please try again with different inputs. (E005)"
)
GENERIC_MODEL_ERROR = "Prediction failed: CUDA error: an illegal memory access was encountered"
PREDICT_LONG_RUNNING_RESPONSE_TYPE = (
    "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
)
VEO_FILTERED_REASON = (
    "Veo could not generate videos because the input prompt violates Google's usage "
    "guidelines. You have not been charged for this request."
)


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class HttpError:
    """Answer the request with this status, body and headers (any route).

    The body is sent as JSON; None sends none, and bytes are sent as they are (with the
    content type the headers give), e.g. an HTML error page labelled as JSON.
    """

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DropConnection:
    """Abort the TCP connection instead of answering (any route).

    With `after_bytes` (download routes only) the response headers and that many body
    bytes are sent first, then the connection is aborted: an interrupted download. (If
    `after_bytes` is at least the file size, the download completes.) Clients see a lost
    connection (httpx.RemoteProtocolError; aiohttp.ServerDisconnectedError, or
    ClientPayloadError mid-body). Needs uvicorn: ASGI itself cannot abort a connection.
    """

    after_bytes: int | None = None


@dataclass(frozen=True)
class SlowGeneration:
    """This one generation takes `seconds` instead of the fake's `latency_seconds`.

    Applies to `gemini.generate_content`, `gemini.predict_long_running` and
    `replicate.create`; use a large value for "never finishes before the deadline".
    """

    seconds: float


@dataclass(frozen=True)
class PromptBlocked:
    """generateContent answers `promptFeedback.blockReason` and no candidates."""

    reason: str = "SAFETY"


@dataclass(frozen=True)
class CandidateBlocked:
    """generateContent answers one candidate with this finishReason and no content."""

    finish_reason: str = "SAFETY"


@dataclass(frozen=True)
class RawText:
    """generateContent answers this candidate text verbatim (e.g. malformed JSON)."""

    text: str


@dataclass(frozen=True)
class FewerScenes:
    """generateContent answers `missing` fewer scenes than the prompt asked for."""

    missing: int = 1


@dataclass(frozen=True)
class EmptyDescription:
    """generateContent answers the scene at `scene_index` with an empty description."""

    scene_index: int = 0


@dataclass(frozen=True)
class VeoFiltered:
    """The Veo operation ends done with `raiMediaFilteredCount` and no samples."""

    reasons: tuple[str, ...] = (VEO_FILTERED_REASON,)


@dataclass(frozen=True)
class VeoOperationError:
    """The Veo operation ends done with `error: {code, message}` (google.rpc.Status)."""

    code: int = 13
    message: str = "Video generation failed due to an internal error. Please try again."


@dataclass(frozen=True)
class PredictionFailed:
    """The Replicate prediction ends `failed` with this error text."""

    error: str = GENERIC_MODEL_ERROR


Fault = (
    HttpError
    | DropConnection
    | SlowGeneration
    | PromptBlocked
    | CandidateBlocked
    | RawText
    | FewerScenes
    | EmptyDescription
    | VeoFiltered
    | VeoOperationError
    | PredictionFailed
)

_ANY_ROUTE: tuple[type, ...] = (HttpError, DropConnection)
_FAULTS_BY_ROUTE: dict[Route, tuple[type, ...]] = {
    "gemini.generate_content": (
        *_ANY_ROUTE,
        SlowGeneration,
        PromptBlocked,
        CandidateBlocked,
        RawText,
        FewerScenes,
        EmptyDescription,
    ),
    "gemini.predict_long_running": (
        *_ANY_ROUTE,
        SlowGeneration,
        VeoFiltered,
        VeoOperationError,
    ),
    "gemini.operation": _ANY_ROUTE,
    "gemini.download": _ANY_ROUTE,
    "replicate.create": (*_ANY_ROUTE, SlowGeneration, PredictionFailed),
    "replicate.get": _ANY_ROUTE,
    "replicate.cancel": _ANY_ROUTE,
    "replicate.download": _ANY_ROUTE,
}
_DOWNLOAD_ROUTES: frozenset[Route] = frozenset({"gemini.download", "replicate.download"})


def _problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """Replicate's RFC 7807 problem body."""
    return {"title": title, "detail": detail, "status": status}


def _google_error(
    code: int, status: str, message: str, details: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Google's `{"error": google.rpc.Status}` body."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def replicate_unauthenticated() -> HttpError:
    """Replicate's answer to a missing or revoked API token."""
    return HttpError(
        401,
        _problem(401, "Unauthenticated", "You did not pass a valid authentication token"),
    )


def replicate_rate_limited(retry_after_seconds: int = 7) -> HttpError:
    """Replicate's throttling answer; the SDK's ReplicateError keeps the body, not headers."""
    detail = f"Request was throttled. Expected available in {retry_after_seconds} seconds."
    return HttpError(
        429,
        _problem(429, "Request was throttled.", detail),
        {"Retry-After": str(retry_after_seconds)},
    )


def replicate_server_error(status: int = 500) -> HttpError:
    """A Replicate 5xx (500 Internal Server Error, 503 Service Unavailable, ...)."""
    titles = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    title = titles.get(status, "Server Error")
    return HttpError(status, _problem(status, title, f"{title}. Please try again later."))


def google_rate_limited(retry_delay_seconds: int = 7) -> HttpError:
    """Gemini's quota answer: 429 RESOURCE_EXHAUSTED with a RetryInfo detail."""
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": f"{retry_delay_seconds}s",
        },
    ]
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        f"Please retry in {retry_delay_seconds}s."
    )
    return HttpError(429, _google_error(429, "RESOURCE_EXHAUSTED", message, details))


def google_api_key_invalid() -> HttpError:
    """Gemini's answer to a bad key: 400 INVALID_ARGUMENT, ErrorInfo reason API_KEY_INVALID."""
    message = "API key not valid. Please pass a valid API key."
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        },
    ]
    return HttpError(400, _google_error(400, "INVALID_ARGUMENT", message, details))


def google_server_error(status: int = 500) -> HttpError:
    """A Gemini 5xx: 500 INTERNAL or 503 UNAVAILABLE ("model is overloaded")."""
    if status == 503:
        body = _google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    else:
        body = _google_error(
            status, "INTERNAL", "An internal error has occurred. Please retry or report it."
        )
    return HttpError(status, body)


def prediction_flagged_sensitive() -> PredictionFailed:
    """Replicate's content-policy refusal (E005)."""
    return PredictionFailed(SENSITIVE_CONTENT_ERROR)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it reached the fake provider."""

    route: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case header names, as received (API keys included)."""
    json: Any
    """The parsed JSON body, or None when the body was empty or not JSON."""


@dataclass(frozen=True)
class GeneratedFile:
    """A media file the fake produced for a successful generation; `url` serves it."""

    url: str
    file_id: str
    content_type: str


@dataclass
class _VeoOperation:
    name: str
    ready_at: float
    outcome: VeoFiltered | VeoOperationError | None
    sample_count: int
    file_ids: list[str] = field(default_factory=list)
    """Filled when the operation is first seen done."""


@dataclass
class _Prediction:
    id: str
    model: str
    input: dict[str, Any]
    created_at: str
    ready_at: float
    outcome: PredictionFailed | None
    canceled: bool = False
    completed_at: str | None = None
    output: str | None = None


@dataclass(frozen=True)
class _StoredFile:
    content_type: str
    content: bytes | None
    """Image bytes; None for a clip, which is served from the shared clip buffer."""


@dataclass(frozen=True)
class _MediaGrant:
    """What a signed media URL (the target of Gemini's download redirect) serves."""

    file_id: str
    drop_after_bytes: int | None


class _Interrupt(Exception):
    """Raised inside a handler to answer with `response` at once (errors, auth, faults)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_google_id() -> str:
    """Lower-case alphanumerics only: the SDK extracts file ids with `[a-z0-9]+`."""
    return uuid.uuid4().hex[:16]


def _new_replicate_id() -> str:
    """26 lower-case base32 characters, the shape of Replicate prediction ids."""
    return base64.b32encode(uuid.uuid4().bytes).decode().lower().rstrip("=")


def _clip_filler(size: int) -> bytes:
    """Pseudo-random bytes shared by every clip, built once per clip size."""
    block = b"".join(
        hashlib.sha256(b"fake-upstream-clip" + i.to_bytes(4, "big")).digest() for i in range(128)
    )
    return (block * (size // len(block) + 1))[:size]


def _clip_head(file_id: str, total_bytes: int) -> bytes:
    """ISO-BMFF boxes (`ftyp`, a `free` box naming the id, `mdat` header) opening a clip."""
    ftyp = struct.pack(">I4s4sI", 32, b"ftyp", b"isom", 0x200) + b"isomiso2avc1mp41"
    tag = f"fake-upstream clip {file_id}".encode()
    free = struct.pack(">I4s", 8 + len(tag), b"free") + tag
    mdat_bytes = total_bytes - len(ftyp) - len(free)
    if mdat_bytes < 8:
        raise ValueError(f"clip of {total_bytes} bytes is too small for file id {file_id!r}")
    return ftyp + free + struct.pack(">I4s", mdat_bytes, b"mdat")


def _image_size(aspect_ratio: object) -> tuple[int, int]:
    """Pixel size for an "W:H" aspect ratio, IMAGE_SHORT_SIDE_PX on the short side."""
    match = re.fullmatch(r"(\d+):(\d+)", str(aspect_ratio))
    ratio_w, ratio_h = (int(match[1]), int(match[2])) if match else (1, 1)
    if ratio_w == 0 or ratio_h == 0:
        ratio_w = ratio_h = 1
    if ratio_w >= ratio_h:
        return round(IMAGE_SHORT_SIDE_PX * ratio_w / ratio_h), IMAGE_SHORT_SIDE_PX
    return IMAGE_SHORT_SIDE_PX, round(IMAGE_SHORT_SIDE_PX * ratio_h / ratio_w)


def _render_image(file_id: str, model_input: Mapping[str, Any]) -> tuple[bytes, str, str]:
    """A small real image as Imagen on Replicate would return: (bytes, content type, suffix)."""
    width, height = _image_size(model_input.get("aspect_ratio", "1:1"))
    colour = tuple(hashlib.sha256(file_id.encode()).digest()[:3])
    image = Image.new("RGB", (width, height), colour)
    buffer = io.BytesIO()
    if str(model_input.get("output_format", "png")).lower() in {"jpg", "jpeg"}:
        image.save(buffer, format="JPEG")
        return buffer.getvalue(), "image/jpeg", "jpg"
    image.save(buffer, format="PNG")
    return buffer.getvalue(), "image/png", "png"


def _prompt_text(body: Mapping[str, Any]) -> str:
    """All text parts of a generateContent request's `contents`, in order."""
    texts = [
        part["text"]
        for content in body.get("contents") or []
        for part in content.get("parts") or []
        if isinstance(part.get("text"), str)
    ]
    return "\n".join(texts)


def _scene_count(body: Mapping[str, Any]) -> int:
    """`exactly N scenes` from the prompt or the system instruction, else the default."""
    system = body.get("systemInstruction") or {}
    instruction = " ".join(part.get("text", "") for part in system.get("parts") or [])
    match = SCENE_COUNT_PATTERN.search(f"{_prompt_text(body)}\n{instruction}")
    return int(match[1]) if match else DEFAULT_SCENE_COUNT


def _prefer_wait_seconds(prefer: str | None) -> float | None:
    """Seconds a `Prefer: wait` / `Prefer: wait=N` header asks the create call to hold."""
    if prefer is None:
        return None
    match = re.search(r"\bwait(?:=(\d+))?", prefer)
    if match is None:
        return None
    seconds = int(match[1]) if match[1] else REPLICATE_MAX_WAIT_SECONDS
    return float(min(seconds, REPLICATE_MAX_WAIT_SECONDS))


async def _abort_connection(receive: Receive) -> None:
    """Reset the client's connection and wait until uvicorn has noticed it.

    ASGI has no "abort" message, so this reaches the transport through uvicorn's request
    cycle (`receive` is its bound method). Waiting for `http.disconnect` makes uvicorn
    treat the response as abandoned rather than log an incomplete one.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("DropConnection needs uvicorn's httptools or h11 protocol")
    transport.abort()
    while (await receive())["type"] != "http.disconnect":
        pass


async def _hold(receive: Receive, seconds: float) -> None:
    """Sleep like a generation in progress, but stop early if the client goes away.

    A fake that kept sleeping for departed clients (timeout tests, benchmark runs) would
    pile up handler tasks that delay shutdown. Call only after the body has been read.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass


class _MediaResponse(Response):
    """Streams in-memory bytes in CHUNK_BYTES slices without copying them.

    Clips share one precomputed buffer, so serving many large downloads at once costs no
    memory or CPU beyond TLS. `drop_after_bytes` cuts the body short and aborts.
    """

    def __init__(
        self, parts: Sequence[bytes | memoryview], media_type: str, drop_after_bytes: int | None
    ) -> None:
        super().__init__(media_type=media_type)
        self._parts = parts
        self._drop_after_bytes = drop_after_bytes
        self.headers["content-length"] = str(sum(len(part) for part in parts))

    def _chunks(self) -> Iterator[memoryview]:
        for part in self._parts:
            view = memoryview(part)
            for start in range(0, len(view), CHUNK_BYTES):
                yield view[start : start + CHUNK_BYTES]

    async def __call__(self, _scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        budget = self._drop_after_bytes
        for chunk in self._chunks():
            if budget is not None and len(chunk) > budget:
                if budget:
                    head = chunk[:budget]
                    await send({"type": "http.response.body", "body": head, "more_body": True})
                await _abort_connection(receive)
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if budget is not None:
                budget -= len(chunk)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


# --------------------------------------------------------------------------- the fake


class FakeUpstream:
    """Fake Gemini Developer API + Replicate HTTP API on https://127.0.0.1:PORT.

    Point the SDKs at `base_url` (`HttpOptions(base_url=...)`, `replicate.Client(base_url=
    ...)`) with `SSL_CERT_FILE` set to `ca_cert_path` before the clients are built. Every
    request is appended to `requests`; every media file to `generated_files` when its job
    completes successfully. Like the real file service, a Gemini download answers 302 to a
    signed media URL, so plain HTTP clients must follow redirects. `latency_seconds` and
    `clip_bytes` may be changed between tests; `reset()` restores the values given here.
    """

    def __init__(
        self,
        *,
        latency_seconds: float = 0.0,
        clip_bytes: int = DEFAULT_CLIP_BYTES,
        port: int = 0,
        cert_dir: Path | None = None,
    ) -> None:
        self._default_latency_seconds = latency_seconds
        self._default_clip_bytes = clip_bytes
        self._port = port
        self._cert_dir = cert_dir
        self._own_cert_dir: tempfile.TemporaryDirectory[str] | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._base_url: str | None = None
        self._ca_cert_path: Path | None = None
        self._lock = threading.Lock()
        self._faults: dict[Route, deque[Fault]] = {route: deque() for route in ROUTES}
        self._operations: dict[str, _VeoOperation] = {}
        self._predictions: dict[str, _Prediction] = {}
        self._files: dict[str, _StoredFile] = {}
        self._media_grants: dict[str, _MediaGrant] = {}
        self.requests: list[RecordedRequest] = []
        self.generated_files: list[GeneratedFile] = []
        self.latency_seconds = latency_seconds
        self.clip_bytes = clip_bytes
        self.app = self._build_app()

    # ---- knobs and scripting

    @property
    def clip_bytes(self) -> int:
        """Size of every video clip served, in bytes."""
        return self._clip_bytes

    @clip_bytes.setter
    def clip_bytes(self, size: int) -> None:
        if size < MIN_CLIP_BYTES:
            raise ValueError(f"clip_bytes must be at least {MIN_CLIP_BYTES}")
        self._clip_bytes = size
        self._clip_filler = _clip_filler(size)

    def inject(self, route: Route, fault: Fault, times: int = 1) -> None:
        """Make the next `times` requests on `route` fail with `fault` (queued in order)."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {ROUTES}")
        if not isinstance(fault, _FAULTS_BY_ROUTE[route]):
            raise ValueError(f"{type(fault).__name__} does not apply to route {route!r}")
        if (
            isinstance(fault, DropConnection)
            and fault.after_bytes is not None
            and route not in _DOWNLOAD_ROUTES
        ):
            raise ValueError("DropConnection(after_bytes=...) applies to download routes")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults[route].extend([fault] * times)

    def reset(self) -> None:
        """Forget faults, requests, jobs and files; restore the constructor's knobs."""
        with self._lock:
            for queue in self._faults.values():
                queue.clear()
        self._operations.clear()
        self._predictions.clear()
        self._files.clear()
        self._media_grants.clear()
        self.requests.clear()
        self.generated_files.clear()
        self.latency_seconds = self._default_latency_seconds
        if self.clip_bytes != self._default_clip_bytes:
            self.clip_bytes = self._default_clip_bytes

    def requests_for(self, route: str) -> list[RecordedRequest]:
        """The recorded requests that hit `route` (a Route, or "gemini.media"), oldest first."""
        return [request for request in self.requests if request.route == route]

    def clip_content(self, file_id: str) -> bytes:
        """The exact bytes served for clip `file_id` at the current `clip_bytes`."""
        head = _clip_head(file_id, self.clip_bytes)
        return head + self._clip_filler[len(head) :]

    def file_content(self, file_id: str) -> bytes:
        """The exact bytes served for any generated file (clip or image)."""
        stored = self._files[file_id]
        return stored.content if stored.content is not None else self.clip_content(file_id)

    # ---- lifecycle

    @property
    def base_url(self) -> str:
        """`https://127.0.0.1:PORT`, without a trailing slash."""
        if self._base_url is None:
            raise RuntimeError("FakeUpstream is not started")
        return self._base_url

    @property
    def ca_cert_path(self) -> Path:
        """PEM of the throwaway CA that signed the server certificate."""
        if self._ca_cert_path is None:
            raise RuntimeError("FakeUpstream is not started")
        return self._ca_cert_path

    def start(self) -> None:
        """Serve on a background thread; returns once the port accepts connections."""
        if self._cert_dir is None:
            self._own_cert_dir = tempfile.TemporaryDirectory(prefix="fake-upstream-")
            self._cert_dir = Path(self._own_cert_dir.name)
        ca = trustme.CA()
        self._ca_cert_path = self._cert_dir / "fake-upstream-ca.pem"
        ca.cert_pem.write_to_path(str(self._ca_cert_path))
        server_pem = self._cert_dir / "fake-upstream-server.pem"
        ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
            str(server_pem)
        )
        # IPPROTO_TCP (not 0) makes asyncio set TCP_NODELAY on accepted connections.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._port))
        config = uvicorn.Config(
            self.app,
            ssl_certfile=str(server_pem),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            backlog=4096,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[listener])

        def run() -> None:
            with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
                runner.run(serve())

        self._server = server
        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake upstream failed to start")
            time.sleep(0.01)
        self._base_url = f"https://127.0.0.1:{listener.getsockname()[1]}"

    def stop(self) -> None:
        """Stop serving and remove the certificates this instance created.

        Open connections are reset rather than closed gracefully: a TLS close waits for the
        client's close_notify, which idle pooled connections of finished tests never send.
        """
        if self._server is not None and self._thread is not None and self._loop is not None:
            server = self._server

            def abort_connections() -> None:
                for connection in list(server.server_state.connections):
                    connection.transport.abort()  # type: ignore[attr-defined]
                server.should_exit = True

            self._loop.call_soon_threadsafe(abort_connections)
            self._thread.join(timeout=10)
        self._server = self._thread = self._loop = None
        self._base_url = None
        if self._own_cert_dir is not None:
            self._own_cert_dir.cleanup()
            self._own_cert_dir = self._cert_dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- plumbing shared by the handlers

    def _build_app(self) -> Starlette:
        routes = [
            StarletteRoute(
                "/v1beta/models/{model}:generateContent", self._generate_content, methods=["POST"]
            ),
            StarletteRoute(
                "/v1beta/models/{model}:predictLongRunning",
                self._predict_long_running,
                methods=["POST"],
            ),
            StarletteRoute(
                "/v1beta/models/{model}/operations/{operation_id}",
                self._get_operation,
                methods=["GET"],
            ),
            StarletteRoute(
                "/v1beta/files/{file_id}:download", self._gemini_download, methods=["GET"]
            ),
            StarletteRoute("/gemini-media/{grant}", self._gemini_media, methods=["GET"]),
            StarletteRoute(
                "/v1/models/{owner}/{name}/predictions", self._create_prediction, methods=["POST"]
            ),
            StarletteRoute("/v1/predictions/{prediction_id}", self._get_prediction),
            StarletteRoute(
                "/v1/predictions/{prediction_id}/cancel",
                self._cancel_prediction,
                methods=["POST"],
            ),
            StarletteRoute("/replicate-files/{name}", self._replicate_download),
        ]
        return Starlette(routes=routes, exception_handlers={_Interrupt: self._answer_interrupt})

    @staticmethod
    async def _answer_interrupt(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Interrupt)
        return exc.response

    def _next_fault(self, route: Route) -> Fault | None:
        with self._lock:
            queue = self._faults[route]
            return queue.popleft() if queue else None

    async def _record(self, request: Request, route: str) -> RecordedRequest:
        raw = await request.body()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        record = RecordedRequest(
            route=route,
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={name.lower(): value for name, value in request.headers.items()},
            json=parsed,
        )
        self.requests.append(record)
        return record

    def _check_auth(self, request: Request, route: Route) -> None:
        if route.startswith("gemini."):
            if not (request.headers.get("x-goog-api-key") or request.query_params.get("key")):
                message = (
                    "Method doesn't allow unregistered callers (callers without established "
                    "identity). Please use API Key or other form of API consumer identity "
                    "to call this API."
                )
                body = _google_error(403, "PERMISSION_DENIED", message)
                raise _Interrupt(JSONResponse(body, status_code=403))
        elif route != "replicate.download":
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                body = _problem(401, "Unauthenticated", "You did not pass an authentication token")
                raise _Interrupt(self._problem_response(body, 401))

    @staticmethod
    def _problem_response(
        body: Any, status: int, headers: Mapping[str, str] | None = None
    ) -> Response:
        return JSONResponse(
            body,
            status_code=status,
            headers=dict(headers or {}),
            media_type="application/problem+json",
        )

    async def _enter(self, request: Request, route: Route) -> tuple[RecordedRequest, Fault | None]:
        """Record, authenticate, and apply transport-level faults; return what is left."""
        record = await self._record(request, route)
        self._check_auth(request, route)
        fault = self._next_fault(route)
        if isinstance(fault, HttpError):
            headers = dict(fault.headers)
            if fault.body is None or isinstance(fault.body, bytes):
                raw = Response(fault.body, status_code=fault.status, headers=headers)
                raise _Interrupt(raw)
            if route.startswith("replicate."):
                raise _Interrupt(self._problem_response(fault.body, fault.status, headers))
            raise _Interrupt(JSONResponse(fault.body, status_code=fault.status, headers=headers))
        if isinstance(fault, DropConnection) and fault.after_bytes is None:
            await _abort_connection(request.receive)
            raise _Interrupt(Response(status_code=500))  # never reaches the closed socket
        return record, fault

    def _latency(self, fault: Fault | None) -> float:
        return fault.seconds if isinstance(fault, SlowGeneration) else self.latency_seconds

    def _add_clip(self, file_id: str, url: str) -> None:
        self._files[file_id] = _StoredFile("video/mp4", None)
        self.generated_files.append(GeneratedFile(url, file_id, "video/mp4"))

    def _media_response(self, file_id: str, drop_after_bytes: int | None) -> Response:
        stored = self._files[file_id]
        if stored.content is not None:
            parts: Sequence[bytes | memoryview] = [stored.content]
        else:
            head = _clip_head(file_id, self.clip_bytes)
            parts = [head, memoryview(self._clip_filler)[len(head) :]]
        return _MediaResponse(parts, stored.content_type, drop_after_bytes)

    # ---- Gemini

    async def _generate_content(self, request: Request) -> Response:
        record, fault = await self._enter(request, "gemini.generate_content")
        body = record.json or {}
        model = request.path_params["model"]
        await _hold(request.receive, self._latency(fault))
        prompt = " ".join(_prompt_text(body).split())
        answer: dict[str, Any] = {
            "modelVersion": model,
            "responseId": uuid.uuid4().hex,
        }
        if isinstance(fault, PromptBlocked):
            answer["promptFeedback"] = {"blockReason": fault.reason}
            answer["usageMetadata"] = {"promptTokenCount": len(prompt) // 4 + 1}
            return JSONResponse(answer)
        if isinstance(fault, CandidateBlocked):
            rating = {
                "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                "probability": "HIGH",
                "blocked": True,
            }
            candidate = {"finishReason": fault.finish_reason, "index": 0, "safetyRatings": [rating]}
            answer["candidates"] = [candidate]
            answer["usageMetadata"] = {"promptTokenCount": len(prompt) // 4 + 1}
            return JSONResponse(answer)
        if isinstance(fault, RawText):
            text = fault.text
        else:
            count = _scene_count(body)
            scenes = [
                {
                    "description": f"Scene {index} of {count}: {prompt}",
                    "negative_description": f"Scene {index}: blurry footage, warped faces, text",
                }
                for index in range(1, count + 1)
            ]
            if isinstance(fault, FewerScenes):
                scenes = scenes[: max(count - fault.missing, 0)]
            if isinstance(fault, EmptyDescription):
                scenes[fault.scene_index]["description"] = ""
            text = json.dumps({"scenes": scenes})
        prompt_tokens, text_tokens = len(prompt) // 4 + 1, len(text) // 4 + 1
        answer["candidates"] = [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ]
        answer["usageMetadata"] = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": text_tokens,
            "totalTokenCount": prompt_tokens + text_tokens,
        }
        return JSONResponse(answer)

    async def _predict_long_running(self, request: Request) -> Response:
        record, fault = await self._enter(request, "gemini.predict_long_running")
        parameters = (record.json or {}).get("parameters") or {}
        operation_id = _new_google_id()
        name = f"models/{request.path_params['model']}/operations/{operation_id}"
        self._operations[operation_id] = _VeoOperation(
            name=name,
            ready_at=time.monotonic() + self._latency(fault),
            outcome=fault if isinstance(fault, VeoFiltered | VeoOperationError) else None,
            sample_count=int(parameters.get("sampleCount") or 1),
        )
        return JSONResponse({"name": name})

    def _gemini_file_uri(self, file_id: str) -> str:
        return f"{self.base_url}/v1beta/files/{file_id}:download?alt=media"

    async def _get_operation(self, request: Request) -> Response:
        await self._enter(request, "gemini.operation")
        operation = self._operations.get(request.path_params["operation_id"])
        if operation is None:
            body = _google_error(404, "NOT_FOUND", "Operation not found.")
            return JSONResponse(body, status_code=404)
        if time.monotonic() < operation.ready_at:
            # proto3 JSON omits `done: false`: a running operation is just its name.
            return JSONResponse({"name": operation.name})
        answer: dict[str, Any] = {"name": operation.name, "done": True}
        if isinstance(operation.outcome, VeoOperationError):
            answer["error"] = {
                "code": operation.outcome.code,
                "message": operation.outcome.message,
            }
            return JSONResponse(answer)
        if isinstance(operation.outcome, VeoFiltered):
            video_response: dict[str, Any] = {
                "raiMediaFilteredCount": len(operation.outcome.reasons),
                "raiMediaFilteredReasons": list(operation.outcome.reasons),
            }
        else:
            while len(operation.file_ids) < operation.sample_count:
                file_id = _new_google_id()
                self._add_clip(file_id, self._gemini_file_uri(file_id))
                operation.file_ids.append(file_id)
            video_response = {
                "generatedSamples": [
                    {"video": {"uri": self._gemini_file_uri(file_id)}}
                    for file_id in operation.file_ids
                ]
            }
        answer["response"] = {
            "@type": PREDICT_LONG_RUNNING_RESPONSE_TYPE,
            "generateVideoResponse": video_response,
        }
        return JSONResponse(answer)

    async def _gemini_download(self, request: Request) -> Response:
        """Redirect to a signed media URL, as the real file service does (302)."""
        _, fault = await self._enter(request, "gemini.download")
        file_id = request.path_params["file_id"]
        if file_id not in self._files:
            body = _google_error(404, "NOT_FOUND", f"File {file_id} not found.")
            return JSONResponse(body, status_code=404)
        drop_after = fault.after_bytes if isinstance(fault, DropConnection) else None
        grant = uuid.uuid4().hex
        self._media_grants[grant] = _MediaGrant(file_id, drop_after)
        return RedirectResponse(f"{self.base_url}/gemini-media/{grant}", status_code=302)

    async def _gemini_media(self, request: Request) -> Response:
        await self._record(request, "gemini.media")
        grant = self._media_grants.get(request.path_params["grant"])
        if grant is None:
            return Response("signed URL expired", status_code=403, media_type="text/plain")
        return self._media_response(grant.file_id, grant.drop_after_bytes)

    # ---- Replicate

    def _settle(self, prediction: _Prediction) -> str:
        """Complete the prediction (creating its output) if due; return its status now."""
        if (
            prediction.completed_at is None
            and not prediction.canceled
            and time.monotonic() >= prediction.ready_at
        ):
            prediction.completed_at = _now_iso()
            if prediction.outcome is None:
                prediction.output = self._create_output(prediction)
        if prediction.canceled:
            return "canceled"
        if prediction.completed_at is None:
            return "processing"
        return "failed" if prediction.outcome is not None else "succeeded"

    def _prediction_json(self, prediction: _Prediction, status: str) -> dict[str, Any]:
        running = status in {"starting", "processing"}
        prediction_url = f"{self.base_url}/v1/predictions/{prediction.id}"
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": "hidden",
            "input": prediction.input,
            "logs": "" if running else "Generating...\nDone.",
            "output": prediction.output if status == "succeeded" else None,
            "data_removed": False,
            "error": prediction.outcome.error
            if status == "failed" and prediction.outcome
            else None,
            "source": "api",
            "status": status,
            "created_at": prediction.created_at,
            "started_at": None if status == "starting" else prediction.created_at,
            "completed_at": None if running else prediction.completed_at,
            "urls": {
                "cancel": f"{prediction_url}/cancel",
                "get": prediction_url,
                "web": f"https://replicate.com/p/{prediction.id}",
            },
            "metrics": {} if running else {"predict_time": 1.0},
        }

    def _create_output(self, prediction: _Prediction) -> str:
        file_id = uuid.uuid4().hex
        if "imagen" in prediction.model:
            content, content_type, suffix = _render_image(file_id, prediction.input)
            url = f"{self.base_url}/replicate-files/{file_id}.{suffix}"
            self._files[file_id] = _StoredFile(content_type, content)
            self.generated_files.append(GeneratedFile(url, file_id, content_type))
            return url
        url = f"{self.base_url}/replicate-files/{file_id}.mp4"
        self._add_clip(file_id, url)
        return url

    async def _create_prediction(self, request: Request) -> Response:
        record, fault = await self._enter(request, "replicate.create")
        owner, name = request.path_params["owner"], request.path_params["name"]
        if "imagen" not in name and "veo" not in name:
            body = _problem(404, "Not found", f"The model {owner}/{name} does not exist.")
            return self._problem_response(body, 404)
        model_input = (record.json or {}).get("input")
        if not isinstance(model_input, dict):
            body = _problem(422, "Input validation failed", "input: Invalid type. Expected: object")
            return self._problem_response(body, 422)
        prediction = _Prediction(
            id=_new_replicate_id(),
            model=f"{owner}/{name}",
            input=model_input,
            created_at=_now_iso(),
            ready_at=time.monotonic() + self._latency(fault),
            outcome=fault if isinstance(fault, PredictionFailed) else None,
        )
        self._predictions[prediction.id] = prediction
        wait = _prefer_wait_seconds(request.headers.get("prefer"))
        if wait is None:
            return JSONResponse(self._prediction_json(prediction, "starting"), status_code=201)
        await _hold(request.receive, min(wait, prediction.ready_at - time.monotonic()))
        status = self._settle(prediction)
        # A wait that runs out answers "starting" (see replicate.run.async_run's comment).
        status = "starting" if status == "processing" else status
        return JSONResponse(self._prediction_json(prediction, status), status_code=201)

    def _find_prediction(self, request: Request) -> _Prediction:
        prediction = self._predictions.get(request.path_params["prediction_id"])
        if prediction is None:
            raise _Interrupt(self._problem_response(_problem(404, "Not found", "Not found."), 404))
        return prediction

    async def _get_prediction(self, request: Request) -> Response:
        await self._enter(request, "replicate.get")
        prediction = self._find_prediction(request)
        return JSONResponse(self._prediction_json(prediction, self._settle(prediction)))

    async def _cancel_prediction(self, request: Request) -> Response:
        await self._enter(request, "replicate.cancel")
        prediction = self._find_prediction(request)
        if self._settle(prediction) == "processing":
            prediction.canceled = True
            prediction.completed_at = _now_iso()
        return JSONResponse(self._prediction_json(prediction, self._settle(prediction)))

    async def _replicate_download(self, request: Request) -> Response:
        _, fault = await self._enter(request, "replicate.download")
        file_id = Path(request.path_params["name"]).stem
        if file_id not in self._files:
            return Response("Not Found", status_code=404, media_type="text/plain")
        drop_after = fault.after_bytes if isinstance(fault, DropConnection) else None
        return self._media_response(file_id, drop_after)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake as a process (for the benchmark) until SIGINT or SIGTERM.

    Prints one JSON line `{"base_url": ..., "ca_cert_path": ...}` once it accepts
    connections. Clients must follow redirects for Gemini downloads (`curl -L`).
    """
    parser = argparse.ArgumentParser(description="Fake Gemini and Replicate upstream (HTTPS).")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-seconds", type=float, default=0.0)
    parser.add_argument("--clip-bytes", type=int, default=DEFAULT_CLIP_BYTES)
    parser.add_argument("--cert-dir", type=Path, required=True, help="where the CA PEM goes")
    args = parser.parse_args(argv)
    args.cert_dir.mkdir(parents=True, exist_ok=True)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked before the server thread starts, so only sigwait below receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    fake = FakeUpstream(
        latency_seconds=args.latency_seconds,
        clip_bytes=args.clip_bytes,
        port=args.port,
        cert_dir=args.cert_dir,
    )
    fake.start()
    try:
        ready = {"base_url": fake.base_url, "ca_cert_path": str(fake.ca_cert_path)}
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        signal.sigwait(stop_signals)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
