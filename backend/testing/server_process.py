"""The real server as a separate process (`python -m backend`), for tests that need real
sockets and signals: client disconnects, SIGTERM, SIGKILL."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from backend.config import REPO_ROOT

STARTUP_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    """A loopback port that was free a moment ago (the server binds it itself)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def live_server_env(output_dir: Path, upstream_base_url: str) -> dict[str, str]:
    """Settings for a live-mode server whose Replicate client talks to the fake upstream (the
    fake's CA comes from `SSL_CERT_FILE`, which the `fake_upstream` fixture sets)."""
    return {
        "MV_MOCK_MODE": "false",
        "MV_OUTPUT_DIR": str(output_dir),
        "REPLICATE_API_TOKEN": "r8_server-process-test",
        "REPLICATE_BASE_URL": upstream_base_url,
        "MV_POLL_INTERVAL_SECONDS": "0.05",
    }


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
