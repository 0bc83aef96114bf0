"""FakeUpstream: every provider in PROVIDERS on one HTTPS port, with its shared state."""

import asyncio
import json
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import trustme
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from backend.testing.fake_upstream.faults import Fault, FaultScript, PauseDownload, SlowGeneration
from backend.testing.fake_upstream.gemini import Gemini, GeminiRoute
from backend.testing.fake_upstream.media import (
    DEFAULT_CLIP_BYTES,
    MIN_CLIP_BYTES,
    MediaResponse,
    clip_filler,
    clip_head,
)
from backend.testing.fake_upstream.provider import Interrupt, Provider
from backend.testing.fake_upstream.records import (
    GeneratedFile,
    RecordedRequest,
    StoredFile,
    UploadedFile,
)
from backend.testing.fake_upstream.replicate import Replicate, ReplicateRoute

PROVIDERS: tuple[type[Provider], ...] = (Gemini, Replicate)
"""Served side by side on one port; a new provider adds its class here, its names to Route."""
Route = GeminiRoute | ReplicateRoute

_FAULTS_BY_ROUTE = {
    route: faults for provider in PROVIDERS for route, faults in provider.faults_by_route.items()
}
_DOWNLOAD_ROUTES = frozenset(route for provider in PROVIDERS for route in provider.download_routes)
ROUTES: tuple[str, ...] = tuple(_FAULTS_BY_ROUTE)


class FakeUpstream:
    """Fake Gemini Developer API + Replicate HTTP API on https://127.0.0.1:PORT.

    Point the SDKs at `base_url` (`HttpOptions(base_url=...)`, `replicate.Client(base_url=
    ...)`) with `SSL_CERT_FILE` set to `ca_cert_path` before the clients are built. Every
    request is appended to `requests`; every media file to `generated_files` when its job
    completes successfully; every file a client uploads to `uploaded_files` (kept, marked
    `deleted`, after the client deletes it). Like the real file service, a Gemini download
    answers 302 to a signed media URL, so plain HTTP clients must follow redirects.
    `latency_seconds` and `clip_bytes` may be changed between tests; `reset()` restores the
    values given here.
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
        self._faults = FaultScript(_FAULTS_BY_ROUTE, _DOWNLOAD_ROUTES)
        self._providers = [provider(self) for provider in PROVIDERS]
        self._files: dict[str, StoredFile] = {}
        self.requests: list[RecordedRequest] = []
        self.generated_files: list[GeneratedFile] = []
        self.uploaded_files: list[UploadedFile] = []
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
        self._clip_filler = clip_filler(size)

    def inject(self, route: Route, fault: Fault, times: int = 1) -> None:
        """Make the next `times` requests on `route` fail with `fault` (queued in order)."""
        self._faults.add(route, fault, times)

    def reset(self) -> None:
        """Forget faults, requests, jobs and files; restore the constructor's knobs."""
        self._faults.clear()
        for provider in self._providers:
            provider.reset()
        self._files.clear()
        self.requests.clear()
        self.generated_files.clear()
        self.uploaded_files.clear()
        self.latency_seconds = self._default_latency_seconds
        if self.clip_bytes != self._default_clip_bytes:
            self.clip_bytes = self._default_clip_bytes

    def requests_for(self, route: str) -> list[RecordedRequest]:
        """The recorded requests that hit `route` (a Route, or "gemini.media"), oldest first."""
        return [request for request in self.requests if request.route == route]

    def clip_content(self, file_id: str) -> bytes:
        """The exact bytes served for clip `file_id` at the current `clip_bytes`."""
        head = clip_head(file_id, self.clip_bytes)
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

    # ---- what the providers' handlers share

    def _build_app(self) -> Starlette:
        routes = [route for provider in self._providers for route in provider.routes()]
        return Starlette(routes=routes, exception_handlers={Interrupt: self._answer_interrupt})

    @staticmethod
    async def _answer_interrupt(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Interrupt)
        return exc.response

    def next_fault(self, route: str) -> Fault | None:
        """The fault injected for this request on `route`, if any (see Provider.enter)."""
        return self._faults.next(route)

    async def record(self, request: Request, route: str) -> RecordedRequest:
        """Append `request` to `requests` under `route` (its body is read here, once)."""
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

    def latency(self, fault: Fault | None) -> float:
        """Seconds a generation takes: `latency_seconds`, unless a SlowGeneration says."""
        return fault.seconds if isinstance(fault, SlowGeneration) else self.latency_seconds

    def add_file(
        self, file_id: str, url: str, content_type: str, content: bytes | None = None
    ) -> None:
        """Serve a generated file from now on and list it in `generated_files`.

        `content` None makes it a clip: its bytes follow `clip_bytes` (see `clip_content`).
        """
        self._files[file_id] = StoredFile(content_type, content)
        self.generated_files.append(GeneratedFile(url, file_id, content_type))

    def has_file(self, file_id: str) -> bool:
        return file_id in self._files

    def media_response(
        self, file_id: str, drop_after_bytes: int | None, pause: PauseDownload | None = None
    ) -> Response:
        """The download of a generated file, cut off after `drop_after_bytes` if given, held
        back for a while by `pause`."""
        stored = self._files[file_id]
        if stored.content is not None:
            parts: Sequence[bytes | memoryview] = [stored.content]
        else:
            head = clip_head(file_id, self.clip_bytes)
            parts = [head, memoryview(self._clip_filler)[len(head) :]]
        return MediaResponse(parts, stored.content_type, drop_after_bytes, pause)
