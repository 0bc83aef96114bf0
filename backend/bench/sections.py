"""The benchmark's sections: each drives a running `Stack` over HTTP and returns figures.

Figures are JSON-ready dicts of numbers (seconds, ms, MiB, MiB/s). A request is timed from
just before it is sent to the end of its body, and counts as succeeded only when the
server answered with what it promises: a clip of the fake's size, the scenes asked for,
the exact bytes of a range. Every dict that reports requests has `requests` and
`succeeded`, so a reader (or the smoke test) can check that nothing failed.
"""

import asyncio
import base64
import contextlib
import functools
import io
import json
import logging
import math
import os
import shutil
import socket
import ssl
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from PIL import Image

from backend.api.connections import raise_open_file_limit
from backend.bench.probes import (
    MIB,
    CpuMeter,
    HealthSampler,
    RssSampler,
    collector_paused,
    established_connections,
    latency_summary_ms,
    percentile,
    rounded,
)
from backend.bench.processes import Stack
from backend.config import Settings
from backend.mv.providers.downloads import DOWNLOAD_SLOTS, download, download_session
from backend.mv.storage.local import LocalStore

logger = logging.getLogger("backend.bench")

CLIP_PROMPT = "Bench clip {index}: a silver robot dances alone in a neon-lit street at night"
SCENE_COUNT = 4
SCENES_REQUEST = {
    "idea": "A robot discovers music in an abandoned city",
    "character_description": "Silver metallic humanoid robot with a red shield on its chest",
    "number_of_scenes": SCENE_COUNT,
}
FAKE_VIDEO_MODEL = "google/veo-3.1"
"""Any Replicate model name containing "veo" makes the fake answer with a clip."""
FAKE_TEXT_MODEL = "gemini-2.5-flash"
FAKE_AUTH = {"Authorization": "Bearer bench-replicate-token", "x-goog-api-key": "bench-key"}
CURL_MAX_PARALLEL = 300
"""curl's own ceiling for --parallel-max."""
RANGE_BYTES = MIB
STREAM_SETTLE_SECONDS = 0.5
MAX_ERRORS_REPORTED = 3
RIG_SCENE_CALLS = 20


@dataclass(frozen=True)
class Outcome:
    """One request: its latency, whether it delivered what it promises, and why not."""

    latency_seconds: float
    ok: bool
    body: Any = None
    error: str | None = None


@functools.cache
def _load_client_tls() -> ssl.SSLContext:
    """One TLS context for every load client: httpx builds one per client otherwise, about
    20 ms each (certifi's bundle), 4 s for section 1's 200 callers."""
    return httpx.create_ssl_context()


def load_client(connections: int, timeout_seconds: float) -> httpx.AsyncClient:
    """A load client whose pool holds `connections` requests in flight at once, HTTP/1.1.

    A pool smaller than its load would queue requests inside the client, and the queueing
    would be reported as server latency.
    """
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        verify=_load_client_tls(),
        limits=limits,
        timeout=httpx.Timeout(timeout_seconds, connect=30.0),
    )


def _fake_client(stack: Stack, connections: int) -> httpx.AsyncClient:
    """A client of the fake itself (HTTPS, its throwaway CA) for the rig's own figures."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=stack.fake_url,
        verify=ssl.create_default_context(cafile=str(stack.ca_cert_path)),
        limits=limits,
        timeout=httpx.Timeout(600.0, connect=30.0),
        headers=FAKE_AUTH,
    )


async def _post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    check: Callable[[Any], str | None],
) -> Outcome:
    """POST and time it; `check` names what is wrong with a 200 body, or returns None."""
    started = time.perf_counter()
    try:
        response = await client.post(url, json=payload)
    except httpx.HTTPError as exc:
        return Outcome(time.perf_counter() - started, ok=False, error=f"{type(exc).__name__}")
    latency = time.perf_counter() - started
    if response.status_code != httpx.codes.OK:
        return Outcome(
            latency, ok=False, error=f"HTTP {response.status_code}: {response.text[:160]}"
        )
    body = response.json()
    problem = check(body)
    return Outcome(latency, ok=problem is None, body=body, error=problem)


def _request_figures(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    errors = Counter(outcome.error for outcome in outcomes if not outcome.ok)
    return {
        "requests": len(outcomes),
        "succeeded": sum(outcome.ok for outcome in outcomes),
        "errors": [
            f"{count} x {error}" for error, count in errors.most_common(MAX_ERRORS_REPORTED)
        ],
    }


def _seconds_summary(outcomes: Sequence[Outcome]) -> dict[str, float | None]:
    latencies = [outcome.latency_seconds for outcome in outcomes if outcome.ok]
    return {
        "latency_p50_s": rounded(percentile(latencies, 0.50)),
        "latency_p99_s": rounded(percentile(latencies, 0.99)),
        "latency_max_s": rounded(max(latencies)) if latencies else None,
    }


async def generate_clip(
    client: httpx.AsyncClient, stack: Stack, backend: str, index: int
) -> Outcome:
    """One `generate_video`; succeeded means 200 and a stored clip of the fake's size."""

    def check(body: Any) -> str | None:
        size = body.get("metadata", {}).get("file_size_bytes")
        return None if size == stack.clip_bytes else f"clip of {size} bytes"

    payload = {"prompt": CLIP_PROMPT.format(index=index), "backend": backend}
    return await _post_json(client, f"{stack.server_url}/api/mv/generate_video", payload, check)


async def _remove_clips(outcomes: Sequence[Outcome]) -> None:
    """Clips land in our temporary MV_OUTPUT_DIR; removing them keeps disk use flat."""
    for outcome in outcomes:
        if outcome.ok:
            await anyio.Path(outcome.body["video_path"]).unlink(missing_ok=True)


def _cpu_meter(stack: Stack) -> CpuMeter:
    pids = {"server": stack.server_pid, "fake": stack.fake_pid, "client": os.getpid()}
    return CpuMeter(pids, with_children=frozenset({"server"}))


# --------------------------------------------------------------------------- 1: rig floor


async def _fake_clip_urls(stack: Stack, clips: int) -> list[str]:
    """URLs of `clips` fresh clips, from predictions created directly at the fake."""
    async with _fake_client(stack, clips) as fake:

        async def create() -> str:
            response = await fake.post(
                f"/v1/models/{FAKE_VIDEO_MODEL}/predictions", json={"input": {"prompt": "rig"}}
            )
            response.raise_for_status()
            return response.json()["id"]

        async def output(prediction_id: str) -> str:
            while True:
                response = await fake.get(f"/v1/predictions/{prediction_id}")
                response.raise_for_status()
                prediction = response.json()
                if prediction["status"] == "succeeded":
                    return prediction["output"]
                if prediction["status"] in {"failed", "canceled"}:
                    raise RuntimeError(f"fake prediction ended {prediction['status']}")
                await asyncio.sleep(0.05)

        prediction_ids = await asyncio.gather(*(create() for _ in range(clips)))
        await asyncio.sleep(stack.latency_seconds)
        return list(await asyncio.gather(*(output(pid) for pid in prediction_ids)))


async def _curl_fetch_all(urls: Sequence[str], ca_cert_path: Path) -> list[int]:
    """Fetch every URL at once with one `curl --parallel`; the sizes of the 200 answers."""
    config = "".join(f'url = "{url}"\noutput = "/dev/null"\n' for url in urls)
    command = [
        "curl",
        "--silent",
        "--show-error",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        str(min(len(urls), CURL_MAX_PARALLEL)),
        "--cacert",
        str(ca_cert_path),
        "--write-out",
        "%{http_code} %{size_download}\\n",
        "--config",
        "-",
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate(config.encode())
    answers = [line.split() for line in stdout.decode().splitlines() if line.strip()]
    return [int(size) for status, size in answers if status == "200"]


async def _httpx_fetch_all(urls: Sequence[str], stack: Stack) -> list[int]:
    """The fallback when curl is missing: fetch every URL at once and discard the bytes."""
    async with _fake_client(stack, len(urls)) as fake:

        async def fetch(url: str) -> int:
            received = 0
            async with fake.stream("GET", url) as response:
                async for chunk in response.aiter_raw():
                    received += len(chunk)
            return received

        return list(await asyncio.gather(*(fetch(url) for url in urls)))


async def rig_floor(stack: Stack, clips: int) -> dict[str, Any]:
    """The fake's own delivery time for `clips` x S to a trivial client, all at once.

    No server can finish section 1 sooner than L plus this on the same machine: the fake
    encrypts every byte it serves on one core, and the clients share the other. Measured in
    the same run, on the same fake, so the server's wall can be set against it.
    """
    urls = await _fake_clip_urls(stack, clips)
    use_curl = shutil.which("curl") is not None
    started = time.perf_counter()
    sizes = await (
        _curl_fetch_all(urls, stack.ca_cert_path) if use_curl else _httpx_fetch_all(urls, stack)
    )
    seconds = time.perf_counter() - started
    total_mib = sum(sizes) / MIB
    return {
        "client": "curl --parallel" if use_curl else "httpx",
        "requests": clips,
        "succeeded": sum(size == stack.clip_bytes for size in sizes),
        "total_mib": round(total_mib, 1),
        "delivery_seconds": round(seconds, 3),
        "throughput_mib_s": round(total_mib / seconds, 1),
    }


async def download_floor(stack: Stack, clips: int) -> dict[str, Any]:
    """The service's own download path, alone: `clips` x S from the fake to disk, all at once.

    `downloads.download` into the local store (TLS, the staged file, the worker-thread writes and
    sha256, the fsync) in this process, on the server's download session and slots, with
    no HTTP server, SDK or bookkeeping around it. The server's section 1 cannot end sooner than
    L plus this; what it takes beyond is the cost of everything else.
    """
    urls = await _fake_clip_urls(stack, clips)
    slots = asyncio.Semaphore(DOWNLOAD_SLOTS)
    trust = ssl.create_default_context(cafile=str(stack.ca_cert_path))
    with tempfile.TemporaryDirectory(dir=stack.output_dir.parent) as scratch:
        store = LocalStore(Path(scratch))
        async with download_session(Settings(_env_file=None), trust) as session:
            with collector_paused():
                started = time.perf_counter()
                written = await asyncio.gather(
                    *(
                        download(
                            session,
                            url,
                            lambda index=index: store.writer(f"{index}.mp4"),
                            backend="bench",
                            hold_slot=lambda: slots,
                        )
                        for index, url in enumerate(urls)
                    )
                )
                seconds = time.perf_counter() - started
    total_mib = sum(digest.size_bytes for digest in written) / MIB
    return {
        "requests": clips,
        "succeeded": sum(digest.size_bytes == stack.clip_bytes for digest in written),
        "total_mib": round(total_mib, 1),
        "delivery_seconds": round(seconds, 3),
        "throughput_mib_s": round(total_mib / seconds, 1),
    }


# --------------------------------------------------------------------------- 1, 2, 3a


async def concurrent_generations(
    stack: Stack,
    *,
    backend: str,
    requests: int,
    timeout_seconds: float,
    health_interval_seconds: float,
    floor_seconds: float,
    download_floor_seconds: float,
) -> dict[str, dict[str, Any]]:
    """Section 1 for one backend, with sections 2 and 3a sampled while it runs.

    Each request comes from a client of its own, as from separate front ends; one client
    holding every connection would spend a core of the shared machine scanning its own pool
    (httpcore walks every connection on each request and response). One request first warms
    the server up (lazy imports, pools), as in 3b. All `requests` are then sent at once; the
    wall runs from the first send to the last answer. Returns {"generate": ..., "health":
    ..., "memory": ...} figures.
    """
    logger.info("generate[%s]: %d concurrent requests", backend, requests)
    latency = stack.latency_seconds
    async with contextlib.AsyncExitStack() as opened:
        callers = [
            await opened.enter_async_context(load_client(1, timeout_seconds))
            for _ in range(requests)
        ]
        warm_up = await generate_clip(callers[0], stack, backend, -1)
        await _remove_clips([warm_up])
        with (
            collector_paused(),
            _cpu_meter(stack) as cpu,
            RssSampler(stack.server_pid) as rss,
            HealthSampler(stack.server_url, health_interval_seconds) as health,
        ):
            started = time.perf_counter()
            outcomes = await asyncio.gather(
                *(
                    generate_clip(caller, stack, backend, index)
                    for index, caller in enumerate(callers)
                )
            )
            wall = time.perf_counter() - started
    await _remove_clips(outcomes)
    queue_waits = [o.body["metadata"]["queue_wait_seconds"] for o in outcomes if o.ok]
    figures = _request_figures(outcomes)
    if not warm_up.ok:
        figures["errors"].insert(0, f"warm-up: {warm_up.error}")
    generate = {
        **figures,
        "wall_seconds": round(wall, 3),
        "wall_over_latency": round(wall / latency, 3),
        "wall_over_latency_plus_floor": round(wall / (latency + floor_seconds), 3),
        "wall_over_latency_plus_download_floor": round(
            wall / (latency + download_floor_seconds), 3
        ),
        **_seconds_summary(outcomes),
        "queue_wait_max_s": max(queue_waits, default=None),
        **cpu.figures,
    }
    return {"generate": generate, "health": health.summary(), "memory": rss.summary()}


# --------------------------------------------------------------------------- 3b


async def streaming_memory(
    client: httpx.AsyncClient, stack: Stack, *, backend: str, clips: int
) -> dict[str, Any]:
    """RSS growth while `clips` large clips stream from the fake through the server at once.

    One clip is generated first (and counted in `requests`) so that lazily built state,
    TLS contexts and pools, is in the baseline; growth is the peak minus that baseline.
    """
    logger.info("memory[%s]: %d clips of %.0f MiB at once", backend, clips, stack.clip_bytes / MIB)
    warm_up = await generate_clip(client, stack, backend, -1)
    await _remove_clips([warm_up])
    await asyncio.sleep(STREAM_SETTLE_SECONDS)
    with collector_paused(), _cpu_meter(stack) as cpu, RssSampler(stack.server_pid) as rss:
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(generate_clip(client, stack, backend, index) for index in range(clips))
        )
        wall = time.perf_counter() - started
    await _remove_clips(outcomes)
    streamed_mib = sum(outcome.ok for outcome in outcomes) * stack.clip_bytes / MIB
    return {
        **_request_figures([warm_up, *outcomes]),
        "clips": clips,
        "clip_mib": round(stack.clip_bytes / MIB, 1),
        "wall_seconds": round(wall, 3),
        "throughput_mib_s": round(streamed_mib / wall, 1),
        **rss.summary(),
        **cpu.figures,
    }


# --------------------------------------------------------------------------- 4


async def _stream_and_discard(client: httpx.AsyncClient, url: str, size: int) -> float | None:
    """Seconds to receive the whole clip, or None when it did not arrive whole."""
    received = 0
    started = time.perf_counter()
    async with client.stream("GET", url) as response:
        async for chunk in response.aiter_raw():
            received += len(chunk)
    seconds = time.perf_counter() - started
    return seconds if response.status_code == httpx.codes.OK and received == size else None


async def _curl_seconds(url: str, size: int) -> float | None:
    """curl's own transfer time for the clip (its startup excluded), or None on failure."""
    process = await asyncio.create_subprocess_exec(
        *("curl", "--silent", "--output", "/dev/null"),
        *("--write-out", "%{http_code} %{size_download} %{time_total}", url),
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    answer = stdout.decode().split()
    if len(answer) != 3:
        return None
    status, received, seconds = answer
    return float(seconds) if status == "200" and int(received) == size else None


def _read_from(path: Path, offset: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read()


async def _range_check(
    client: httpx.AsyncClient, url: str, path: Path, size: int
) -> dict[str, Any]:
    """The last MiB by Range, compared byte for byte with the file on disk."""
    start = max(0, size - RANGE_BYTES)
    response = await client.get(url, headers={"Range": f"bytes={start}-{size - 1}"})
    on_disk = await anyio.to_thread.run_sync(_read_from, path, start)
    content_range_ok = response.headers.get("content-range") == f"bytes {start}-{size - 1}/{size}"
    return {
        "range_status": response.status_code,
        "range_bytes": len(response.content),
        "range_matches": response.status_code == httpx.codes.PARTIAL_CONTENT
        and content_range_ok
        and response.content == on_disk,
    }


async def get_video_throughput(
    client: httpx.AsyncClient, stack: Stack, *, backend: str, repeats: int
) -> dict[str, Any]:
    """Download one large clip `repeats` times with httpx (and once with curl), stream and
    discard; then check a Range request for its last MiB against the file on disk.

    The clip was just written, so it is in the page cache: this measures the server, not the
    disk. Both clients share the CPU with the server; the faster one is the better estimate
    of what the server can deliver, so `throughput_mib_s` is the better of the two.
    """
    logger.info("get_video: %.0f MiB clip, %d downloads", stack.clip_bytes / MIB, repeats)
    clip = await generate_clip(client, stack, backend, 0)
    if not clip.ok:
        return {**_request_figures([clip]), "throughput_mib_s": None, "range_matches": False}
    url = f"{stack.server_url}{clip.body['video_url']}"
    size = clip.body["metadata"]["file_size_bytes"]
    with collector_paused():
        httpx_seconds = [await _stream_and_discard(client, url, size) for _ in range(repeats)]
        curl_seconds = await _curl_seconds(url, size) if shutil.which("curl") else None
    range_figures = await _range_check(client, url, Path(clip.body["video_path"]), size)
    size_mib = size / MIB
    httpx_rates = [size_mib / seconds for seconds in httpx_seconds if seconds]
    httpx_mib_s = statistics.median(httpx_rates) if httpx_rates else None
    curl_mib_s = size_mib / curl_seconds if curl_seconds else None
    rates = {"httpx": httpx_mib_s, "curl": curl_mib_s}
    best_client = max((name for name in rates if rates[name]), key=lambda name: rates[name] or 0)
    downloads = [seconds is not None for seconds in httpx_seconds]
    if shutil.which("curl"):
        downloads.append(curl_seconds is not None)
    checks = [clip.ok, *downloads, range_figures["range_matches"]]
    return {
        "requests": len(checks),
        "succeeded": sum(checks),
        "file_mib": round(size_mib, 1),
        "httpx_mib_s": rounded(httpx_mib_s, 1),
        "httpx_runs_mib_s": [round(rate, 1) for rate in httpx_rates],
        "curl_mib_s": rounded(curl_mib_s, 1),
        "throughput_mib_s": rounded(rates[best_client], 1),
        "throughput_client": best_client,
        **range_figures,
    }


# --------------------------------------------------------------------------- 5


async def _direct_scene_calls(stack: Stack, calls: int) -> list[float]:
    """Latencies of generateContent called at the fake directly: the rig's own round trip."""
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": f"Write exactly {SCENE_COUNT} scenes for a robot"}]}
        ]
    }
    url = f"/v1beta/models/{FAKE_TEXT_MODEL}:generateContent"
    latencies = []
    async with _fake_client(stack, 1) as fake:
        (await fake.post(url, json=body)).raise_for_status()  # handshake, not counted
        for _ in range(calls):
            started = time.perf_counter()
            (await fake.post(url, json=body)).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


async def create_scenes_overhead(
    client: httpx.AsyncClient, stack: Stack, *, sequential: int, concurrent: int
) -> dict[str, Any]:
    """Server overhead of create_scenes: its latency minus the fake's generateContent latency.

    `sequential` requests one after another (the overhead itself), then `concurrent` at once
    (the overhead when requests share the event loop). The headline p50/p99 cover both, after
    one warm-up request. The rig's own round trip (the load client calling the fake
    directly, minus L) is reported beside it: the overhead includes one such hop.
    """
    logger.info("create_scenes: %d sequential, %d concurrent", sequential, concurrent)
    url = f"{stack.server_url}/api/mv/create_scenes"

    def check(body: Any) -> str | None:
        scenes = body.get("scenes")
        count = len(scenes) if isinstance(scenes, list) else None
        return None if count == SCENE_COUNT else f"{count} scenes"

    warm_up = await _post_json(client, url, SCENES_REQUEST, check)
    with collector_paused():
        in_sequence = [
            await _post_json(client, url, SCENES_REQUEST, check) for _ in range(sequential)
        ]
        at_once = await asyncio.gather(
            *(_post_json(client, url, SCENES_REQUEST, check) for _ in range(concurrent))
        )
        direct = await _direct_scene_calls(stack, min(sequential, RIG_SCENE_CALLS))
    latency = stack.latency_seconds

    def overheads(outcomes: Sequence[Outcome]) -> list[float]:
        return [outcome.latency_seconds - latency for outcome in outcomes if outcome.ok]

    both = latency_summary_ms(overheads([*in_sequence, *at_once]))
    return {
        **_request_figures([warm_up, *in_sequence, *at_once]),
        "fake_latency_s": latency,
        "overhead_p50_ms": both["p50_ms"],
        "overhead_p99_ms": both["p99_ms"],
        "sequential": latency_summary_ms(overheads(in_sequence)),
        "concurrent": {**latency_summary_ms(overheads(at_once)), "at_once": concurrent},
        "rig_direct": latency_summary_ms([seconds - latency for seconds in direct]),
    }


# --------------------------------------------------------------------------- 6


def _open_idle_connections(server_url: str, count: int) -> list[socket.socket]:
    """`count` connections to the server that never send a byte (this process's open-file
    limit raised to its hard limit first: each one is a descriptor here too)."""
    raise_open_file_limit()
    host, port = server_url.removeprefix("http://").split(":")
    return [socket.create_connection((host, int(port))) for _ in range(count)]


async def idle_connections(
    stack: Stack, *, connections: int, sample_seconds: float, health_interval_seconds: float
) -> dict[str, Any]:
    """/health latency while `connections` idle connections are open, beside the same figure
    with none open just before.

    Each sample is a new connection (a new client), so a server that cannot accept shows up
    here and not only a slow one. Sampling stops before the server's 10 s header deadline
    closes the idle ones; `held` is how many the server still had established at the end.
    """
    logger.info("idle_connections: /health with %d idle connections open", connections)
    with HealthSampler(stack.server_url, health_interval_seconds, new_connections=True) as quiet:
        await asyncio.sleep(sample_seconds)
    crowd = await asyncio.to_thread(_open_idle_connections, stack.server_url, connections)
    try:
        with HealthSampler(
            stack.server_url, health_interval_seconds, new_connections=True
        ) as crowded:
            await asyncio.sleep(sample_seconds)
        port = int(stack.server_url.rsplit(":", 1)[1])
        held = await asyncio.to_thread(established_connections, stack.server_pid, port)
    finally:
        for connection in crowd:
            connection.close()
    return {
        **crowded.summary(),
        "connections": connections,
        "held": held,
        "sample_seconds": sample_seconds,
        "none_open": quiet.summary(),
    }


# --------------------------------------------------------------------------- 7


def reference_image_png(size_bytes: int) -> bytes:
    """A real PNG of about `size_bytes`: random pixels, which PNG cannot compress."""
    side = max(8, math.isqrt(size_bytes // 3))
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        buffer, format="PNG", compress_level=1
    )
    return buffer.getvalue()


async def _generate_with_reference(client: httpx.AsyncClient, stack: Stack, body: bytes) -> Outcome:
    """One `generate_video` whose JSON body was encoded beforehand: the load client's own
    `json.dumps` of 13 MB would hold this process's interpreter lock, and with it the
    /health sampler's thread."""
    started = time.perf_counter()
    try:
        response = await client.post(
            f"{stack.server_url}/api/mv/generate_video",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    except httpx.HTTPError as exc:
        return Outcome(time.perf_counter() - started, ok=False, error=f"{type(exc).__name__}")
    latency = time.perf_counter() - started
    if response.status_code != httpx.codes.OK:
        return Outcome(
            latency, ok=False, error=f"HTTP {response.status_code}: {response.text[:160]}"
        )
    return Outcome(latency, ok=True, body=response.json())


async def reference_images(
    stack: Stack,
    *,
    backend: str,
    requests: int,
    image: bytes,
    timeout_seconds: float,
    health_interval_seconds: float,
) -> dict[str, Any]:
    """/health while `requests` generate_video, each with `image` as
    `reference_image_base64`, are sent to `backend` at once (issue 14: 10 at once, a 13 MB
    body each, p99 under 20 ms).

    One such request warms the server up first (its decoders, the upstream connection).
    Each request has a client of its own; the bodies are encoded before timing starts.
    """
    logger.info(
        "reference_images[%s]: %d requests, %.1f MB image", backend, requests, len(image) / 1e6
    )
    encoded = base64.b64encode(image).decode("ascii")

    def body(index: int) -> bytes:
        prompt = CLIP_PROMPT.format(index=index)
        payload = {"prompt": prompt, "backend": backend, "reference_image_base64": encoded}
        return json.dumps(payload).encode()

    async with contextlib.AsyncExitStack() as opened:
        callers = [
            await opened.enter_async_context(load_client(1, timeout_seconds))
            for _ in range(requests)
        ]
        warm_up = await _generate_with_reference(callers[0], stack, body(-1))
        await _remove_clips([warm_up])
        bodies = [body(index) for index in range(requests)]
        with (
            collector_paused(),
            _cpu_meter(stack) as cpu,
            RssSampler(stack.server_pid) as rss,
            HealthSampler(stack.server_url, health_interval_seconds) as health,
        ):
            started = time.perf_counter()
            outcomes = await asyncio.gather(
                *(
                    _generate_with_reference(caller, stack, payload)
                    for caller, payload in zip(callers, bodies, strict=True)
                )
            )
            wall = time.perf_counter() - started
    await _remove_clips(outcomes)
    figures = _request_figures(outcomes)
    if not warm_up.ok:
        figures["errors"].insert(0, f"warm-up: {warm_up.error}")
    return {
        **figures,
        "image_bytes": len(image),
        "body_bytes": len(bodies[0]),
        "wall_seconds": round(wall, 3),
        "health": health.summary(),
        **rss.summary(),
        **cpu.figures,
    }
