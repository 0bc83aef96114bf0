"""The faults a test can inject, and the mechanics every provider delivers them with.

Each provider declares which of these its routes accept (`Provider.faults_by_route`);
`FaultScript` holds what was injected and refuses a fault its route cannot produce.
"""

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive

GENERIC_MODEL_ERROR = "Prediction failed: CUDA error: an illegal memory access was encountered"
VEO_FILTERED_REASON = (
    "Veo could not generate videos because the input prompt violates Google's usage "
    "guidelines. You have not been charged for this request."
)


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
class PauseDownload:
    """Send `after_bytes` of the file, wait `seconds`, then send the rest (Replicate's
    download route): a download caught half-way, e.g. while the output folder is removed."""

    after_bytes: int
    seconds: float


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
    | PauseDownload
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

ANY_ROUTE: tuple[type, ...] = (HttpError, DropConnection)
"""The faults every route accepts; `Provider.enter` delivers all but a partial download."""


class FaultScript:
    """The faults injected per route, consumed in order by the requests that hit it.

    Tests inject from their own thread while the server's thread consumes, hence the lock.
    """

    def __init__(
        self, faults_by_route: Mapping[str, tuple[type, ...]], download_routes: frozenset[str]
    ) -> None:
        self._faults_by_route = faults_by_route
        self._download_routes = download_routes
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {route: deque() for route in faults_by_route}

    def add(self, route: str, fault: Fault, times: int) -> None:
        """Queue `fault` for the next `times` requests on `route`, if it can produce it."""
        if route not in self._faults_by_route:
            routes = tuple(self._faults_by_route)
            raise ValueError(f"unknown route {route!r}; expected one of {routes}")
        if not isinstance(fault, self._faults_by_route[route]):
            raise ValueError(f"{type(fault).__name__} does not apply to route {route!r}")
        if (
            isinstance(fault, DropConnection)
            and fault.after_bytes is not None
            and route not in self._download_routes
        ):
            raise ValueError("DropConnection(after_bytes=...) applies to download routes")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._queues[route].extend([fault] * times)

    def next(self, route: str) -> Fault | None:
        """The fault for this request on `route`, or None to answer normally."""
        with self._lock:
            queue = self._queues[route]
            return queue.popleft() if queue else None

    def clear(self) -> None:
        """Drop every queued fault (FakeUpstream.reset)."""
        with self._lock:
            for queue in self._queues.values():
                queue.clear()


async def abort_connection(receive: Receive) -> None:
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


async def hold(receive: Receive, seconds: float) -> None:
    """Sleep like a generation in progress, but stop early if the client goes away.

    A fake that kept sleeping for departed clients (timeout tests, benchmark runs) would
    pile up handler tasks that delay shutdown. Call only after the body has been read.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
