"""Connection limits, driven the way a hostile or broken client would: raw sockets against the
real server process (`python -m backend`), on loopback.

The deadlines are fixed (10 s for a head, 30 s for a body, 5 s of keep-alive idleness), so the
slow observations run side by side on one server, started together by `slow_probes`: the
module takes about as long as the slowest of them, not their sum.
"""

import asyncio
import contextlib
import http.client
import json
import resource
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.api.connections import raise_open_file_limit
from backend.bench.probes import RssSampler, established_connections
from backend.testing.contract import assert_error_shape
from backend.testing.fake_upstream import FakeUpstream
from backend.testing.server_process import live_server_env, running_server

# DESIGN.md's numbers, written out rather than imported: the tests check the contract.
HEAD_LIMIT = 16384
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
KEEP_ALIVE = 5.0
LONG_GENERATION_SECONDS = BODY_TIMEOUT + 3
"""A mock generation that outlasts the body deadline: waiting for an answer is not limited."""
PATIENCE_SECONDS = 75.0
"""How long a probe waits for the server before it calls the connection stuck open."""
HUGE_HEAD_BYTES = 48 * 1024 * 1024
HUGE_HEAD_CLIENTS = 16
MAX_RSS_GROWTH_MIB = 32
CROWD = 2000
"""Connections held open at once in the crowd test: idle ones and trickling ones, half each."""
USUAL_SOFT_OPEN_FILE_LIMIT = 1024


def _connect(base_url: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)))
    connection.settimeout(PATIENCE_SECONDS)
    return connection


def _read_answer(connection: socket.socket) -> httpx.Response:
    """Parse one HTTP answer from the socket, as a client library would."""
    answer = http.client.HTTPResponse(connection)
    answer.begin()
    return httpx.Response(answer.status, headers=answer.getheaders(), content=answer.read())


def _closed_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within `seconds`."""
    readable, _, _ = select.select([connection], [], [], seconds)
    if not readable:
        return False
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True


def _timed(probe: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    return probe(), time.monotonic() - started


@contextlib.contextmanager
def _soft_open_file_limit(limit: int) -> Iterator[None]:
    """Processes started inside the block inherit a soft RLIMIT_NOFILE of `limit`, the
    usual default; this process gets its own limit back at once when the block exits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def mock_env(output_dir: Path) -> dict[str, str]:
    return {
        "MV_MOCK_MODE": "true",
        "MV_OUTPUT_DIR": str(output_dir),
        "MV_MOCK_DELAY_SECONDS": str(LONG_GENERATION_SECONDS),
        "MV_API_KEYS": "",
        "MV_MAX_HEADER_BYTES": str(HEAD_LIMIT),
    }


@pytest.fixture(scope="module")
def mock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """One mock-mode server for the module: (base URL, pid)."""
    folder = tmp_path_factory.mktemp("connection-limits")
    with running_server(mock_env(folder / "outputs"), folder / "server.log") as (url, process):
        yield url, process.pid


# ---- the slow probes, run side by side


def silent_connection(base_url: str) -> tuple[bool, float]:
    """Connect and send nothing: (closed by the server, seconds until then)."""
    with _connect(base_url) as connection:
        return _timed(lambda: _closed_within(connection, PATIENCE_SECONDS))


def half_a_head(base_url: str) -> tuple[httpx.Response, float]:
    with _connect(base_url) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: applic")
        return _timed(lambda: _read_answer(connection))


def trickling_body(base_url: str) -> tuple[httpx.Response | None, float]:
    """A complete head, then a body of 1000 bytes sent one byte a second."""
    head = (
        b"POST /api/mv/generate_video HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    with _connect(base_url) as connection:
        connection.sendall(head)
        started = time.monotonic()
        while time.monotonic() - started < PATIENCE_SECONDS:
            readable, _, _ = select.select([connection], [], [], 1.0)
            if readable:
                return _read_answer(connection), time.monotonic() - started
            connection.sendall(b" ")
        return None, time.monotonic() - started


def idle_keep_alive(base_url: str) -> tuple[int, bool, float]:
    """One request, then nothing: (its status, closed by the server, seconds idle until then)."""
    with _connect(base_url) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status = _read_answer(connection).status_code
        closed, seconds = _timed(lambda: _closed_within(connection, PATIENCE_SECONDS))
        return status, closed, seconds


def long_generation(base_url: str) -> tuple[int, float]:
    """A generation whose answer takes longer than the body deadline, after a quick body."""
    with httpx.Client(base_url=base_url, timeout=PATIENCE_SECONDS) as client:
        answer, seconds = _timed(
            lambda: client.post("/api/mv/generate_video", json={"prompt": "A slow robot"})
        )
        return answer.status_code, seconds


SLOW_PROBES = {
    probe.__name__: probe
    for probe in (silent_connection, half_a_head, trickling_body, idle_keep_alive, long_generation)
}


@pytest.fixture(scope="module")
def slow_probes(mock_server: tuple[str, int]) -> Iterator[dict[str, Future]]:
    base_url, _ = mock_server
    with ThreadPoolExecutor(len(SLOW_PROBES)) as pool:
        yield {name: pool.submit(probe, base_url) for name, probe in SLOW_PROBES.items()}


def _result(slow_probes: dict[str, Future], name: str) -> Any:
    return slow_probes[name].result(timeout=PATIENCE_SECONDS + 15)


def test_a_silent_connection_is_closed_after_the_header_timeout(
    slow_probes: dict[str, Future],
) -> None:
    closed, seconds = _result(slow_probes, "silent_connection")
    assert closed
    assert HEADER_TIMEOUT - 1 <= seconds <= HEADER_TIMEOUT + 15


def test_half_a_head_is_answered_408_after_the_header_timeout(
    slow_probes: dict[str, Future],
) -> None:
    answer, seconds = _result(slow_probes, "half_a_head")
    assert_error_shape(answer, 408, "REQUEST_TIMEOUT")
    assert answer.headers["connection"] == "close"
    assert HEADER_TIMEOUT - 1 <= seconds <= HEADER_TIMEOUT + 15


def test_a_trickling_body_is_answered_408_after_the_body_timeout(
    slow_probes: dict[str, Future],
) -> None:
    answer, seconds = _result(slow_probes, "trickling_body")
    assert answer is not None, f"still open after {seconds:.0f} s"
    assert_error_shape(answer, 408, "REQUEST_TIMEOUT")
    assert BODY_TIMEOUT - 1 <= seconds <= BODY_TIMEOUT + 15


def test_an_idle_kept_alive_connection_is_closed_after_five_seconds(
    slow_probes: dict[str, Future],
) -> None:
    status, closed, seconds = _result(slow_probes, "idle_keep_alive")
    assert status == 200
    assert closed
    assert KEEP_ALIVE - 1 <= seconds <= KEEP_ALIVE + 10


def test_waiting_for_an_answer_is_not_cut_by_the_body_timeout(
    slow_probes: dict[str, Future],
) -> None:
    status, seconds = _result(slow_probes, "long_generation")
    assert status == 200
    assert seconds > BODY_TIMEOUT


# ---- head size


def _get_with_padding(base_url: str, padding_bytes: int) -> httpx.Response:
    """A GET /health whose head carries `padding_bytes` of one header, sent at once."""
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"p" * padding_bytes
    with _connect(base_url) as connection:
        connection.sendall(head + b"\r\n\r\n")
        return _read_answer(connection)


def test_a_head_within_the_limit_is_served(mock_server: tuple[str, int]) -> None:
    base_url, _ = mock_server
    assert _get_with_padding(base_url, HEAD_LIMIT - 1024).status_code == 200


@pytest.mark.parametrize("padding_bytes", [HEAD_LIMIT, 64 * 1024, 1024 * 1024])
def test_a_head_over_the_limit_is_answered_431(
    mock_server: tuple[str, int], padding_bytes: int
) -> None:
    base_url, _ = mock_server
    answer = _get_with_padding(base_url, padding_bytes)
    assert_error_shape(answer, 431, "HEADERS_TOO_LARGE")
    assert answer.headers["connection"] == "close"


def test_a_request_line_that_cannot_be_parsed_is_answered_400_in_the_error_shape(
    mock_server: tuple[str, int],
) -> None:
    base_url, _ = mock_server
    with _connect(base_url) as connection:
        connection.sendall(b"NOT AN HTTP REQUEST\r\n\r\n")
        answer = _read_answer(connection)
    assert_error_shape(answer, 400, "VALIDATION_ERROR")


def _send_huge_head(base_url: str) -> str:
    """Send a head of HUGE_HEAD_BYTES; returns the answer's status line, or how it ended."""
    piece = b"x" * (64 * 1024)
    with _connect(base_url) as connection:
        try:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ")
            for _ in range(HUGE_HEAD_BYTES // len(piece)):
                connection.sendall(piece)
        except OSError:
            pass  # the server stopped reading: expected
        try:
            return _read_answer(connection).status_code
        except OSError as exc:
            return type(exc).__name__


def test_huge_heads_are_refused_without_memory_growth(mock_server: tuple[str, int]) -> None:
    """16 clients each sending a 48 MiB head at once: refused, and the server's memory flat."""
    base_url, pid = mock_server
    with RssSampler(pid) as rss, ThreadPoolExecutor(HUGE_HEAD_CLIENTS) as pool:
        endings = list(pool.map(_send_huge_head, [base_url] * HUGE_HEAD_CLIENTS))
    assert set(endings) <= {431, "ConnectionResetError", "BrokenPipeError"}, endings
    assert rss.summary()["rss_growth_mib"] < MAX_RSS_GROWTH_MIB, rss.summary()
    assert httpx.get(f"{base_url}/health", timeout=10).status_code == 200


# ---- a crowd of idle and trickling connections


def _open_crowd(base_url: str, count: int) -> list[socket.socket]:
    crowd = []
    for _ in range(count):
        connection = _connect(base_url)
        connection.setblocking(False)
        crowd.append(connection)
    return crowd


async def _wait_for(condition: Callable[[], bool], what: str, within: float = 8.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {within:g} s"
        await asyncio.sleep(0.1)


def _trickle(connections: list[socket.socket], stop: threading.Event) -> None:
    """Send each connection a head one byte a second, until `stop`."""
    for connection in connections:
        with contextlib.suppress(OSError):
            connection.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    while not stop.wait(1.0):
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.send(b"s")


async def test_a_crowd_of_idle_and_trickling_connections_stops_neither_health_nor_paid_work(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """2000 connections held open (half silent, half sending a head a byte a second) on a
    server started with the usual soft limit of 1024 open files: /health answers and a paid
    generation that is under way completes and is stored."""
    raise_open_file_limit()
    fake_upstream.latency_seconds = 3.0
    env = live_server_env(tmp_path / "outputs", fake_upstream.base_url)
    stop = threading.Event()
    async with contextlib.AsyncExitStack() as opened:
        with _soft_open_file_limit(USUAL_SOFT_OPEN_FILE_LIMIT):
            base_url, process = opened.enter_context(running_server(env, tmp_path / "server.log"))
        port = int(base_url.rsplit(":", 1)[1])
        client = await opened.enter_async_context(
            httpx.AsyncClient(base_url=base_url, timeout=PATIENCE_SECONDS)
        )
        generation = asyncio.create_task(
            client.post("/api/mv/generate_video", json={"prompt": "A robot in a crowd"})
        )
        await _wait_for(lambda: bool(fake_upstream.requests_for("replicate.create")), "a paid job")
        crowd = await asyncio.to_thread(_open_crowd, base_url, CROWD)
        for connection in crowd:
            opened.callback(connection.close)
        trickler = threading.Thread(target=_trickle, args=(crowd[CROWD // 2 :], stop))
        trickler.start()
        opened.callback(trickler.join)
        opened.callback(stop.set)
        await _wait_for(
            lambda: established_connections(process.pid, port) >= CROWD, "the crowd held open"
        )
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as fresh:
            health = await fresh.get("/health")
        answer = await generation
    assert health.status_code == 200
    assert answer.status_code == 200, answer.text
    clip = Path(answer.json()["video_path"])
    assert clip.is_file()
    sidecar = json.loads(clip.with_suffix(".json").read_text())
    assert sidecar["video_id"] == answer.json()["video_id"]
    assert len(fake_upstream.requests_for("replicate.create")) == 1
