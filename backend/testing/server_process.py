"""The real server as a separate process (`python -m backend`), for tests that need real
sockets and signals: client disconnects, SIGTERM, SIGKILL."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from backend.config import REPO_ROOT

STARTUP_TIMEOUT_SECONDS = 30.0
TEST_GEMINI_KEY = "test-gemini-key-9f3a1c"
TEST_REPLICATE_TOKEN = "r8_test-replicate-token-77b2e4"
"""Fake provider keys for tests, in-process apps and server processes alike, so a test can
look for them in logs and answers."""


def mock_server_env(output_dir: Path, **extra: str) -> dict[str, str]:
    """A mock-mode server on `output_dir`, authentication off; `extra` adds or overrides."""
    return {
        "MV_MOCK_MODE": "true",
        "MV_OUTPUT_DIR": str(output_dir),
        "MV_MOCK_DELAY_SECONDS": "1.5",
        "MV_API_KEYS": "",
        **extra,
    }


def live_server_env(output_dir: Path, upstream_base_url: str, **extra: str) -> dict[str, str]:
    """A live server on `output_dir` whose SDKs talk to the fake upstream at
    `upstream_base_url` with test keys (the process must trust its CA: `SSL_CERT_FILE`)."""
    return {
        "MV_MOCK_MODE": "false",
        "MV_OUTPUT_DIR": str(output_dir),
        "MV_API_KEYS": "",
        "REPLICATE_API_TOKEN": TEST_REPLICATE_TOKEN,
        "GEMINI_API_KEY": TEST_GEMINI_KEY,
        "REPLICATE_BASE_URL": upstream_base_url,
        "GOOGLE_GEMINI_BASE_URL": upstream_base_url,
        "MV_POLL_INTERVAL_SECONDS": "0.05",
        **extra,
    }


def free_port() -> int:
    """A loopback port that was free a moment ago (the server binds it itself)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(base_url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} during startup")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"server at {base_url} not healthy after {timeout} s")


@contextmanager
def running_server(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start `python -m backend` with `env` added to this process's environment; yields the
    base URL and the process, and always stops it."""
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "backend", "--port", str(port)],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process, STARTUP_TIMEOUT_SECONDS)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def send_and_hang_up(base_url: str, path: str, body: dict, headers: dict[str, str]) -> None:
    """Send a complete POST, then close the socket before any answer arrives."""
    host, port = base_url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{head}\r\n"
    ).encode() + payload
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(request)
        time.sleep(0.3)


async def wait_for(predicate: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
