"""A real webhook receiver for tests: records every delivery, verifies its signature with
the `standardwebhooks` package, and answers as scripted.

Like the fake upstream it runs uvicorn (a small Starlette app) on its own thread and event
loop, on 127.0.0.1 with a free port, so it serves pytest's event loops and server
processes alike. Plain HTTP by default (the service needs `MV_WEBHOOK_ALLOW_PRIVATE=true`
to deliver to it); `tls=True` serves HTTPS with a throwaway CA (`ca_cert_path`) for the
names `localhost` and `127.0.0.1`.

In a test:

    with WebhookReceiver(secret) as receiver:
        receiver.fail_next(2, status=503)
        ...                                   # deliver to receiver.url("/hooks")
        deliveries = await receiver.wait_for_deliveries(3)

As a process (`python -m backend.testing.webhook_receiver --secret whsec_...`) it prints one
JSON line `{"base_url": ..., "ca_cert_path": ...}`; `GET /_receiver/deliveries` lists the
deliveries and `POST /_receiver/script` with `{"action": "fail", "times": 2, "status": 503}`
(or `"hang"` with `"seconds"`, or `"redirect"` with `"status"`) scripts the next answers.
"""

import argparse
import asyncio
import base64
import json
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import trustme
import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CONTROL_PREFIX = "/_receiver"
REDIRECT_TARGET = "/redirected"
"""Where scripted redirects point: a delivery recorded here means a client followed one."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request as the receiver saw it, and what it answered."""

    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    verified: bool
    """The `standardwebhooks` package accepted the signature for the receiver's secret."""
    verify_error: str | None
    payload: Any
    """The JSON body (parsed whether or not it verified; None if it is not JSON)."""
    answered: str
    """"200", "503", "302", or "hung" for a scripted hang."""

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["body"] = base64.b64encode(self.body).decode("ascii")
        return values


@dataclass(frozen=True, slots=True)
class _Answer:
    action: str
    """"fail", "hang" or "redirect"."""
    status: int = 200
    seconds: float = 0.0


class WebhookReceiver:
    """A webhook endpoint on `base_url`; see the module docstring."""

    def __init__(self, secret: str, *, tls: bool = False, port: int = 0) -> None:
        self._verifier = Webhook(secret)
        self._tls = tls
        self._port = port
        self._lock = threading.Lock()
        self._script: deque[_Answer] = deque()
        self._deliveries: list[Delivery] = []
        self._cert_dir: tempfile.TemporaryDirectory[str] | None = None
        self._ca: trustme.CA | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._base_url: str | None = None
        self._ca_cert_path: Path | None = None
        self.app = Starlette(
            routes=[
                Route(f"{CONTROL_PREFIX}/deliveries", self._list_deliveries, methods=["GET"]),
                Route(f"{CONTROL_PREFIX}/script", self._add_script, methods=["POST"]),
                Route("/{path:path}", self._receive, methods=["POST"]),
            ]
        )

    # ---- scripting and what was received

    def fail_next(self, times: int = 1, *, status: int = 500) -> None:
        """Answer the next `times` deliveries with `status` (any status: 4xx, 5xx, 3xx)."""
        self._queue(_Answer("fail", status=status), times)

    def hang_next(self, times: int = 1, *, seconds: float = 30.0) -> None:
        """Hold the next `times` deliveries `seconds` before answering 200."""
        self._queue(_Answer("hang", seconds=seconds), times)

    def redirect_next(self, times: int = 1, *, status: int = 302) -> None:
        """Answer the next `times` deliveries with a redirect to `REDIRECT_TARGET`."""
        self._queue(_Answer("redirect", status=status), times)

    def _queue(self, answer: _Answer, times: int) -> None:
        with self._lock:
            self._script.extend([answer] * times)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every delivery so far, oldest first (a copy)."""
        with self._lock:
            return list(self._deliveries)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._deliveries.clear()

    async def wait_for_deliveries(self, count: int, *, within: float = 10.0) -> list[Delivery]:
        """The deliveries once there are at least `count`; fails after `within` seconds."""
        deadline = time.monotonic() + within
        while len(deliveries := self.deliveries) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(deliveries)} deliveries, not {count}, in {within} s")
            await asyncio.sleep(0.02)
        return deliveries

    # ---- lifecycle

    @property
    def base_url(self) -> str:
        """`http(s)://127.0.0.1:PORT`, without a trailing slash."""
        if self._base_url is None:
            raise RuntimeError("WebhookReceiver is not started")
        return self._base_url

    def url(self, path: str = "/hooks", *, host: str = "127.0.0.1") -> str:
        """A delivery URL on this receiver; `host="localhost"` exercises name resolution."""
        scheme, _, rest = self.base_url.partition("://")
        port = rest.rsplit(":", 1)[1]
        return f"{scheme}://{host}:{port}{path}"

    @property
    def ca_cert_path(self) -> Path:
        if self._ca_cert_path is None:
            raise RuntimeError("WebhookReceiver has no TLS (tls=False) or is not started")
        return self._ca_cert_path

    def start(self) -> None:
        """Serve on a background thread; returns once the port accepts connections."""
        ssl_options: dict[str, str] = {}
        if self._tls:
            self._cert_dir = tempfile.TemporaryDirectory(prefix="webhook-receiver-")
            cert_dir = Path(self._cert_dir.name)
            self._ca = trustme.CA()
            self._ca_cert_path = cert_dir / "webhook-receiver-ca.pem"
            self._ca.cert_pem.write_to_path(str(self._ca_cert_path))
            server_pem = cert_dir / "webhook-receiver-server.pem"
            self._ca.issue_cert(
                "localhost", "127.0.0.1"
            ).private_key_and_cert_chain_pem.write_to_path(str(server_pem))
            ssl_options["ssl_certfile"] = str(server_pem)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._port))
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            **ssl_options,  # type: ignore[arg-type]
        )
        server = uvicorn.Server(config)

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[listener])

        def run() -> None:
            with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
                runner.run(serve())

        self._server = server
        self._thread = threading.Thread(target=run, name="webhook-receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("webhook receiver failed to start")
            time.sleep(0.01)
        scheme = "https" if self._tls else "http"
        self._base_url = f"{scheme}://127.0.0.1:{listener.getsockname()[1]}"

    def stop(self) -> None:
        """Stop serving (open connections, hung ones included, are reset)."""
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
        if self._cert_dir is not None:
            self._cert_dir.cleanup()
            self._cert_dir = None
            self._ca_cert_path = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- handlers

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            self._verifier.verify(body, headers, json_parse=False)
            verified, verify_error = True, None
        except (WebhookVerificationError, ValueError) as exc:
            verified, verify_error = False, str(exc) or type(exc).__name__
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        with self._lock:
            answer = self._script.popleft() if self._script else None
        answered = "hung" if answer is not None and answer.action == "hang" else "200"
        if answer is not None and answer.action in {"fail", "redirect"}:
            answered = str(answer.status)
        with self._lock:
            self._deliveries.append(
                Delivery(request.url.path, headers, body, verified, verify_error, payload, answered)
            )
        if answer is None:
            return Response("ok", media_type="text/plain")
        if answer.action == "hang":
            await asyncio.sleep(answer.seconds)
            return Response("ok", media_type="text/plain")
        if answer.action == "redirect":
            return Response(status_code=answer.status, headers={"Location": REDIRECT_TARGET})
        return Response("scripted failure", status_code=answer.status, media_type="text/plain")

    async def _list_deliveries(self, _request: Request) -> Response:
        return JSONResponse([delivery.as_json() for delivery in self.deliveries])

    async def _add_script(self, request: Request) -> Response:
        order = await request.json()
        times = int(order.get("times", 1))
        action = order.get("action")
        if action == "fail":
            self.fail_next(times, status=int(order.get("status", 500)))
        elif action == "hang":
            self.hang_next(times, seconds=float(order.get("seconds", 30.0)))
        elif action == "redirect":
            self.redirect_next(times, status=int(order.get("status", 302)))
        else:
            return JSONResponse({"error": f"unknown action {action!r}"}, status_code=400)
        return JSONResponse({"queued": times})


def main(argv: Sequence[str] | None = None) -> None:
    """Run the receiver as a process until SIGINT or SIGTERM (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m backend.testing.webhook_receiver",
        description="Test webhook receiver that verifies Standard Webhooks signatures.",
    )
    parser.add_argument("--secret", required=True, help="the whsec_... secret to verify with")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    args = parser.parse_args(argv)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    receiver = WebhookReceiver(args.secret, tls=args.tls, port=args.port)
    receiver.start()
    try:
        ready = {
            "base_url": receiver.base_url,
            "ca_cert_path": str(receiver.ca_cert_path) if args.tls else None,
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        signal.sigwait(stop_signals)
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
