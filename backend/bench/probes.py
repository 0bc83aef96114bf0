"""Measuring instruments: percentiles, and samplers that run beside the load.

The samplers run on threads of their own rather than as tasks on the load client's event
loop, so their cadence (and the /health latencies they record) does not depend on how busy
that loop is with the load's responses.
"""

import gc
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Self

import httpx
import psutil

MIB = 1024 * 1024
HEALTH_TIMEOUT_SECONDS = 10.0
RSS_INTERVAL_SECONDS = 0.02
CHILDREN_REFRESH_SECONDS = 1.0


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def latency_summary_ms(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50, p99 and max of latencies given in seconds, reported in milliseconds."""
    as_ms = [value * 1000 for value in seconds]
    return {
        "count": len(as_ms),
        "p50_ms": rounded(percentile(as_ms, 0.50), 2),
        "p99_ms": rounded(percentile(as_ms, 0.99), 2),
        "max_ms": rounded(max(as_ms), 2) if as_ms else None,
    }


@contextmanager
def collector_paused() -> Iterator[None]:
    """Collect this process's garbage now, and keep the collector off while requests are
    timed: a full collection of what section 1 leaves behind (200 clients) takes about
    0.3 s, which would otherwise be timed as one request's latency."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Sampler:
    """A daemon thread calling `_sample` every `interval` seconds until the block exits."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def _sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._sample()
            next_at += self.interval
            # A sample that overran its slot is followed at once, without a catch-up burst.
            next_at = max(next_at, time.monotonic())
            self._stop.wait(next_at - time.monotonic())

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


class HealthSampler(_Sampler):
    """`GET /health` every `interval` seconds on one kept-alive connection of its own, or on a
    new connection each time (`new_connections`), as a new client would: that one must also
    be accepted, so it sees what a crowd of other connections does to the server's accept."""

    def __init__(self, server_url: str, interval: float, *, new_connections: bool = False) -> None:
        super().__init__(interval)
        pool = {"limits": httpx.Limits(max_keepalive_connections=0)} if new_connections else {}
        self._client = httpx.Client(base_url=server_url, timeout=HEALTH_TIMEOUT_SECONDS, **pool)
        self.latencies: list[float] = []
        self.failures = 0

    def _sample(self) -> None:
        started = time.perf_counter()
        try:
            response = self._client.get("/health")
        except httpx.HTTPError:
            self.failures += 1
            return
        if response.status_code == httpx.codes.OK:
            self.latencies.append(time.perf_counter() - started)
        else:
            self.failures += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, traceback)
        self._client.close()

    def summary(self) -> dict[str, float | int | None]:
        return {
            **latency_summary_ms(self.latencies),
            "requests": len(self.latencies) + self.failures,
            "succeeded": len(self.latencies),
            "interval_ms": round(self.interval * 1000),
        }


def established_connections(pid: int, port: int) -> int:
    """TCP connections the process `pid` holds established on its listening `port`."""
    return sum(
        1
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == port
    )


class RssSampler(_Sampler):
    """Resident memory of a process and its children; the first sample is the baseline.

    The children list is refreshed once a second (finding them scans /proc), which is enough
    for the server: it starts no long-lived children in live mode.
    """

    def __init__(self, pid: int, interval: float = RSS_INTERVAL_SECONDS) -> None:
        super().__init__(interval)
        self._process = psutil.Process(pid)
        self._tree = [self._process, *self._process.children(recursive=True)]
        self._tree_refreshed_at = time.monotonic()
        self.baseline_bytes = self._tree_rss()
        self.peak_bytes = self.baseline_bytes

    def _tree_rss(self) -> int:
        total = 0
        for process in self._tree:
            with suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def _sample(self) -> None:
        if time.monotonic() - self._tree_refreshed_at > CHILDREN_REFRESH_SECONDS:
            with suppress(psutil.NoSuchProcess):
                self._tree = [self._process, *self._process.children(recursive=True)]
            self._tree_refreshed_at = time.monotonic()
        self.peak_bytes = max(self.peak_bytes, self._tree_rss())

    def summary(self) -> dict[str, float]:
        return {
            "rss_before_mib": round(self.baseline_bytes / MIB, 1),
            "rss_peak_mib": round(self.peak_bytes / MIB, 1),
            "rss_growth_mib": round((self.peak_bytes - self.baseline_bytes) / MIB, 1),
        }


class CpuMeter:
    """CPU seconds (user + system) each named process spent inside the block.

    On a 2-core machine the server, the fake and the load client share the CPU: a process
    near 1.0 CPU-second per wall-second is saturated, whatever its code does. Processes
    named in `with_children` count their children too (a server run with uvicorn workers);
    the others do not (the load client is the parent of everything under test).
    """

    def __init__(
        self, pids: dict[str, int], *, with_children: frozenset[str] = frozenset()
    ) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._with_children = with_children
        self._started: dict[str, float] = {}
        self._wall_started = 0.0
        self.figures: dict[str, float] = {}

    def _cpu_seconds(self, name: str) -> float:
        process = self._processes[name]
        members = [process]
        if name in self._with_children:
            members += process.children(recursive=True)
        total = 0.0
        for member in members:
            with suppress(psutil.NoSuchProcess):
                times = member.cpu_times()
                total += times.user + times.system
        return total

    def __enter__(self) -> Self:
        self._wall_started = time.perf_counter()
        self._started = {name: self._cpu_seconds(name) for name in self._processes}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        wall = time.perf_counter() - self._wall_started
        for name in self._processes:
            with suppress(psutil.NoSuchProcess):
                used = self._cpu_seconds(name) - self._started[name]
                self.figures[f"{name}_cpu_seconds"] = round(used, 2)
                self.figures[f"{name}_cpu_per_wall_second"] = round(used / wall, 2)
