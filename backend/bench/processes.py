"""The processes under test: the fake upstream and the real server, each a process of its own.

The server runs exactly as in production (`python -m backend`: uvicorn, one worker), so the
figures include uvicorn, TLS to the upstream and the SDKs' own HTTP pools. The fake runs in
a separate process so that its CPU (it encrypts every clip it serves) is visible apart from
the server's. Both are started with the interpreter running the benchmark (not `uv run`),
so the PIDs we sample are the Python processes themselves, not a launcher.

`running_stack` stops both processes when its block exits, however it exits.
"""

import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from backend.testing.server_process import free_port

logger = logging.getLogger("backend.bench")

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
SHUTDOWN_GRACE_SECONDS = 2
GENERATION_TIMEOUT_SECONDS = 600
LOG_TAIL_LINES = 30
LOG_FILES = ("server.log", "fake-upstream.log")


class StackError(RuntimeError):
    """A process under test failed to start; the message carries its log's last lines."""


@dataclass(frozen=True)
class Stack:
    """A running fake upstream and server, and what the sections need to know about them."""

    server_url: str
    server_pid: int
    fake_url: str
    fake_pid: int
    ca_cert_path: Path
    output_dir: Path
    latency_seconds: float
    """The fake's latency L for every generation (generateContent, Veo, Replicate)."""
    clip_bytes: int
    """Size of every clip the fake serves."""


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _stop(process: subprocess.Popen[bytes], name: str) -> None:
    """SIGTERM, then SIGKILL if the process outlives STOP_TIMEOUT_SECONDS."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %d) ignored SIGTERM; killing it", name, process.pid)
            process.kill()
            process.wait()
    logger.info("stopped %s (pid %d, exit %s)", name, process.pid, process.returncode)


@contextmanager
def _fake_upstream(
    *, latency_seconds: float, clip_bytes: int, work_dir: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """Start the fake; yields (process, base_url, ca_cert_path) once it accepts connections."""
    log_path = work_dir / "fake-upstream.log"
    command = [
        sys.executable,
        "-m",
        "backend.testing.fake_upstream",
        "--port",
        "0",
        "--latency-seconds",
        str(latency_seconds),
        "--clip-bytes",
        str(clip_bytes),
        "--cert-dir",
        str(work_dir / "certs"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT_SECONDS)
        line = process.stdout.readline() if ready else b""
        if not line:
            raise StackError(f"fake upstream did not start:\n{_log_tail(log_path)}")
        announced = json.loads(line)
        logger.info("fake upstream pid %d at %s", process.pid, announced["base_url"])
        yield process, announced["base_url"], Path(announced["ca_cert_path"])
    finally:
        _stop(process, "fake upstream")
        if process.stdout is not None:
            process.stdout.close()


def _server_environment(
    *,
    fake_url: str,
    ca_cert_path: Path,
    output_dir: Path,
    max_concurrent: int,
    poll: float,
    latency: float,
) -> dict[str, str]:
    """Every setting the figures depend on, set explicitly so a developer's `.env` or shell
    (keys, mock mode, API keys, debug logging) cannot change what is measured. The mock
    backend (`backend: "mock"`) takes as long as the fake: `latency`."""
    return {
        **os.environ,
        "SSL_CERT_FILE": str(ca_cert_path),
        "GEMINI_API_KEY": "bench-gemini-key",
        "REPLICATE_API_TOKEN": "bench-replicate-token",
        "REPLICATE_BASE_URL": fake_url,
        "GOOGLE_GEMINI_BASE_URL": fake_url,
        "MV_OUTPUT_DIR": str(output_dir),
        "MV_MAX_CONCURRENT_GENERATIONS": str(max_concurrent),
        "MV_POLL_INTERVAL_SECONDS": str(poll),
        "MV_GENERATION_TIMEOUT_SECONDS": str(GENERATION_TIMEOUT_SECONDS),
        "MV_SHUTDOWN_GRACE_SECONDS": str(SHUTDOWN_GRACE_SECONDS),
        "MV_MOCK_MODE": "false",
        "MV_MOCK_DELAY_SECONDS": str(latency),
        "MV_DEBUG_MODE": "false",
        "MV_API_KEYS": "",
    }


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(f"server exited with {process.returncode}:\n{_log_tail(log_path)}")
            try:
                if client.get(f"{url}/health").status_code == httpx.codes.OK:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise StackError(
        f"server not healthy after {STARTUP_TIMEOUT_SECONDS:g} s:\n{_log_tail(log_path)}"
    )


@contextmanager
def _server(
    *, environment: dict[str, str], work_dir: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start `python -m backend` on a free port; yields (process, url) once /health answers.

    Its stdout and stderr (uvicorn's access log, the service's log) go to a file, never to a
    pipe nobody reads: a full pipe would stall the server mid-benchmark.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = work_dir / "server.log"
    command = [sys.executable, "-m", "backend", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_until_healthy(process, url, log_path)
        logger.info("server pid %d at %s", process.pid, url)
        yield process, url
    finally:
        _stop(process, "server")


def _keep_logs(work_dir: Path, keep_logs_in: Path) -> None:
    keep_logs_in.mkdir(parents=True, exist_ok=True)
    for name in LOG_FILES:
        if (work_dir / name).exists():
            shutil.copyfile(work_dir / name, keep_logs_in / name)


@contextmanager
def running_stack(
    *,
    latency_seconds: float,
    clip_bytes: int,
    max_concurrent: int,
    poll_interval_seconds: float,
    work_dir: Path,
    keep_logs_in: Path | None = None,
) -> Iterator[Stack]:
    """A fake upstream of latency L and clip size S, and a server pointed at it.

    `max_concurrent` becomes MV_MAX_CONCURRENT_GENERATIONS: it must be at least the number
    of requests sent at once, or the figures measure the server's queue, not its waiting.
    Both processes' logs are copied to `keep_logs_in` once they have stopped, whatever
    happened: a failed request's cause is in the server log, not in its answer.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    output_dir = work_dir / "outputs"
    try:
        with ExitStack() as processes:
            fake, fake_url, ca_cert_path = processes.enter_context(
                _fake_upstream(
                    latency_seconds=latency_seconds, clip_bytes=clip_bytes, work_dir=work_dir
                )
            )
            environment = _server_environment(
                fake_url=fake_url,
                ca_cert_path=ca_cert_path,
                output_dir=output_dir,
                max_concurrent=max_concurrent,
                poll=poll_interval_seconds,
                latency=latency_seconds,
            )
            server, server_url = processes.enter_context(
                _server(environment=environment, work_dir=work_dir)
            )
            yield Stack(
                server_url=server_url,
                server_pid=server.pid,
                fake_url=fake_url,
                fake_pid=fake.pid,
                ca_cert_path=ca_cert_path,
                output_dir=output_dir,
                latency_seconds=latency_seconds,
                clip_bytes=clip_bytes,
            )
    finally:
        if keep_logs_in is not None:
            _keep_logs(work_dir, keep_logs_in)
