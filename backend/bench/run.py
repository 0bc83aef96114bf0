"""Command line and orchestration: which stacks to start, which sections to run on each.

Two stacks, each a fresh fake upstream and server:

- the load stack (latency L, clips of S) for section 1, with 2 and 3a sampled during it,
  then section 6 on the same server;
- the large-file stack (a short latency, clips of 200 MiB) for 3b, 4 and 5. Its server is
  fresh, so the RSS growth of 3b is not blurred by what section 1 left behind, and its
  short latency keeps 50 sequential create_scenes quick: the overhead (latency minus the
  fake's latency) does not depend on L;
- the assembly stack for 7 (issue 16): a fresh server whose only work is the render, so
  its /health and RSS figures are the render's.
  fake's latency) does not depend on L.
- the reference-image stack (its own latency, clips of S) for 7, fresh as well: mock,
  then each live backend, one after the other on the same server.

The figures go to stdout as a table and to `--output` as JSON; progress goes to stderr.
The exit status is 0 when the benchmark ran to the end, whatever the verdicts.
"""

import argparse
import asyncio
import json
import logging
import os
import platform
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

from backend.bench import sections as bench
from backend.bench.assembly import assembly_speed
from backend.bench.processes import REPO_ROOT, Stack, running_stack
from backend.bench.report import MIB, evaluate_targets, render_table
from backend.mv.video_backends import VideoBackendName

logger = logging.getLogger("backend.bench")

BACKENDS = tuple(name.value for name in VideoBackendName if name != VideoBackendName.MOCK)
SECTIONS = (
    "generate",
    "health",
    "memory",
    "get_video",
    "create_scenes",
    "idle_connections",
    "assembly",
    "reference_images",
)
GENERATE_SECTIONS = {"generate", "health", "memory"}
LOAD_SECTIONS = {*GENERATE_SECTIONS, "idle_connections"}
LARGE_FILE_SECTIONS = {"memory", "get_video", "create_scenes"}
DEFAULT_OUTPUT = REPO_ROOT / "bench-results" / "latest.json"


@dataclass(frozen=True)
class BenchConfig:
    """Every knob; the two presets below give their values, the command line overrides."""

    requests: int
    latency_seconds: float
    clip_bytes: int
    big_clip_bytes: int
    stream_clips: int
    large_file_latency_seconds: float
    scenes_sequential: int
    scenes_concurrent: int
    get_video_repeats: int
    poll_interval_seconds: float
    health_interval_seconds: float
    idle_connections: int
    idle_sample_seconds: float
    assembly_clips: int
    assembly_clip_seconds: float
    assembly_size: tuple[int, int]
    assembly_fps: int
    reference_requests: int
    reference_image_bytes: int
    reference_latency_seconds: float
    reference_health_interval_seconds: float
    backends: tuple[str, ...]
    sections: tuple[str, ...]
    output: Path


ISSUE_PRESET: dict[str, Any] = {
    "requests": 200,
    "latency_seconds": 5.0,
    "clip_bytes": 5 * MIB,
    "big_clip_bytes": 200 * MIB,
    "stream_clips": 10,
    "large_file_latency_seconds": 0.5,
    "scenes_sequential": 50,
    "scenes_concurrent": 20,
    "get_video_repeats": 3,
    "poll_interval_seconds": 0.5,
    "health_interval_seconds": 0.05,
    "idle_connections": 2000,
    "idle_sample_seconds": 8.0,
    "assembly_clips": 12,
    "assembly_clip_seconds": 8.0,
    "assembly_size": (1280, 720),
    "assembly_fps": 24,
    "reference_requests": 10,
    "reference_image_bytes": 9_700_000,
    "reference_latency_seconds": 3.0,
    "reference_health_interval_seconds": 0.005,
}
SMOKE_PRESET: dict[str, Any] = {
    **ISSUE_PRESET,
    "requests": 4,
    "latency_seconds": 0.2,
    "clip_bytes": 64 * 1024,
    "big_clip_bytes": 2 * MIB,
    "stream_clips": 3,
    "large_file_latency_seconds": 0.05,
    "scenes_sequential": 5,
    "scenes_concurrent": 3,
    "get_video_repeats": 1,
    "poll_interval_seconds": 0.1,
    "idle_sample_seconds": 1.0,
    "assembly_clips": 3,
    "assembly_clip_seconds": 2.0,
    "assembly_size": (320, 180),
    "reference_requests": 2,
    "reference_image_bytes": 1_000_000,
    "reference_latency_seconds": 0.2,
}


def _csv(allowed: tuple[str, ...]) -> Any:
    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
        unknown = [item for item in chosen if item not in allowed]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}")
        return chosen

    return parse


def _mib(text: str) -> int:
    return int(float(text) * MIB)


def parse_args(argv: list[str] | None) -> BenchConfig:
    parser = argparse.ArgumentParser(
        prog="python -m backend.bench",
        description="Load benchmark of the music-video service against a fake upstream "
        "(issue 7). Options left out take the issue's values, or the smoke preset's.",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny N, L and sizes (< 20 s)")
    parser.add_argument("-n", "--requests", type=int, help="N concurrent generate_video (200)")
    parser.add_argument(
        "-L",
        "--latency",
        dest="latency_seconds",
        type=float,
        help="fake upstream latency L in seconds (5)",
    )
    parser.add_argument(
        "-S",
        "--clip-mib",
        dest="clip_bytes",
        type=_mib,
        help="clip size S in MiB for section 1 (5)",
    )
    parser.add_argument(
        "--big-clip-mib",
        dest="big_clip_bytes",
        type=_mib,
        help="clip size for sections 3b and 4, MiB (200)",
    )
    parser.add_argument(
        "--stream-clips", type=int, help="big clips streamed at once in section 3b (10)"
    )
    parser.add_argument(
        "--large-file-latency",
        dest="large_file_latency_seconds",
        type=float,
        help="fake latency for sections 3b, 4, 5 in seconds (0.5)",
    )
    parser.add_argument("--scenes-sequential", type=int, help="create_scenes one by one (50)")
    parser.add_argument("--scenes-concurrent", type=int, help="create_scenes at once (20)")
    parser.add_argument("--get-video-repeats", type=int, help="httpx downloads in 4 (3)")
    parser.add_argument(
        "--poll-interval",
        dest="poll_interval_seconds",
        type=float,
        help="MV_POLL_INTERVAL_SECONDS for the server (0.5)",
    )
    parser.add_argument(
        "--idle-connections", type=int, help="idle connections held open in section 6 (2000)"
    )
    parser.add_argument(
        "--idle-seconds",
        dest="idle_sample_seconds",
        type=float,
        help="how long /health is sampled in section 6, below the 10 s header deadline (8)",
    )
    parser.add_argument("--assembly-clips", type=int, help="clips joined in section 7 (12)")
    parser.add_argument(
        "--assembly-clip-seconds", type=float, help="length of each clip in section 7 (8)"
    )
    parser.add_argument(
        "--reference-requests",
        type=int,
        help="generate_video with a reference image at once in section 7 (10)",
    )
    parser.add_argument(
        "--reference-image-mb",
        dest="reference_image_bytes",
        type=lambda text: int(float(text) * 1e6),
        help="size of section 7's PNG in MB (9.7: 13 MB of base64)",
    )
    parser.add_argument(
        "--reference-latency",
        dest="reference_latency_seconds",
        type=float,
        help="fake latency for section 7 in seconds (3)",
    )
    parser.add_argument(
        "--backends",
        type=_csv(BACKENDS),
        default=BACKENDS,
        help="comma-separated: replicate,gemini (both)",
    )
    parser.add_argument(
        "--sections",
        type=_csv(SECTIONS),
        default=SECTIONS,
        help=f"comma-separated: {','.join(SECTIONS)} (all)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where the JSON goes (bench-results/latest.json)",
    )
    arguments = vars(parser.parse_args(argv))
    preset = SMOKE_PRESET if arguments.pop("smoke") else ISSUE_PRESET
    values = {
        name: preset[name] if arguments.get(name) is None else arguments[name]
        for name in (field.name for field in fields(BenchConfig))
        if name in preset
    }
    values.update(
        backends=arguments["backends"], sections=arguments["sections"], output=arguments["output"]
    )
    return BenchConfig(**values)


# --------------------------------------------------------------------------- the runs


async def _load_sections(stack: Stack, config: BenchConfig) -> dict[str, Any]:
    """Sections 1-3a (when any of them is chosen), then 6 on the same server: its idle
    connections come after the load, so they cannot disturb the load's figures."""
    results: dict[str, Any] = {}
    if GENERATE_SECTIONS & set(config.sections):
        results = await _generate_sections(stack, config)
    if "idle_connections" in config.sections:
        results["idle_connections"] = await bench.idle_connections(
            stack,
            connections=config.idle_connections,
            sample_seconds=config.idle_sample_seconds,
            health_interval_seconds=config.health_interval_seconds,
        )
    return results


async def _generate_sections(stack: Stack, config: BenchConfig) -> dict[str, Any]:
    """Section 1 per backend (after the rig's and the download path's floors), with 2 and 3a
    sampled during it."""
    results: dict[str, Any] = {"generate": {}, "health": {}, "memory": {"during_generate": {}}}
    floor = await bench.rig_floor(stack, config.requests)
    results["generate"]["rig_floor"] = floor
    download_floor = await bench.download_floor(stack, config.requests)
    results["generate"]["download_floor"] = download_floor
    timeout = 20 * config.latency_seconds + 120
    for backend in config.backends:
        run = await bench.concurrent_generations(
            stack,
            backend=backend,
            requests=config.requests,
            timeout_seconds=timeout,
            health_interval_seconds=config.health_interval_seconds,
            floor_seconds=floor["delivery_seconds"],
            download_floor_seconds=download_floor["delivery_seconds"],
        )
        results["generate"][backend] = run["generate"]
        results["health"][backend] = run["health"]
        results["memory"]["during_generate"][backend] = run["memory"]
    return results


async def _reference_image_sections(stack: Stack, config: BenchConfig) -> dict[str, Any]:
    """Section 7 for the mock (our own code alone), then for each live backend."""
    image = bench.reference_image_png(config.reference_image_bytes)
    runs = {}
    for backend in (VideoBackendName.MOCK.value, *config.backends):
        runs[backend] = await bench.reference_images(
            stack,
            backend=backend,
            requests=config.reference_requests,
            image=image,
            timeout_seconds=20 * config.reference_latency_seconds + 120,
            health_interval_seconds=config.reference_health_interval_seconds,
        )
    return {"reference_images": runs}


async def _large_file_sections(stack: Stack, config: BenchConfig) -> dict[str, Any]:
    """5 first (before gigabytes pass through the page cache), then 3b, then 4."""
    results: dict[str, Any] = {}
    connections = max(config.stream_clips, config.scenes_concurrent) + 8
    async with bench.load_client(connections, timeout_seconds=600) as client:
        if "create_scenes" in config.sections:
            results["create_scenes"] = await bench.create_scenes_overhead(
                client,
                stack,
                sequential=config.scenes_sequential,
                concurrent=config.scenes_concurrent,
            )
        if "memory" in config.sections:
            results["memory"] = {"streaming": {}}
            for backend in config.backends:
                results["memory"]["streaming"][backend] = await bench.streaming_memory(
                    client, stack, backend=backend, clips=config.stream_clips
                )
        if "get_video" in config.sections:
            results["get_video"] = await bench.get_video_throughput(
                client, stack, backend=config.backends[0], repeats=config.get_video_repeats
            )
    return results


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def logs_folder(config: BenchConfig) -> Path:
    """Where the processes' logs are kept: beside the JSON, e.g. `latest-logs/load/`."""
    return config.output.with_name(f"{config.output.stem}-logs")


def run_benchmark(config: BenchConfig) -> dict[str, Any]:
    """Start each stack the chosen sections need, run them, and stop the stack again."""
    chosen = set(config.sections)
    results: dict[str, Any] = {}
    # Every queue must be wider than the load, or we would measure the semaphore's queue.
    max_concurrent = (
        max(
            config.requests,
            config.stream_clips,
            config.scenes_concurrent,
            config.reference_requests,
        )
        + 1
    )
    with tempfile.TemporaryDirectory(prefix="mv-bench-") as scratch:

        def stack(name: str, *, latency_seconds: float, clip_bytes: int) -> Any:
            """A fresh stack for `name`'s sections, its logs kept under that name."""
            return running_stack(
                latency_seconds=latency_seconds,
                clip_bytes=clip_bytes,
                max_concurrent=max_concurrent,
                poll_interval_seconds=config.poll_interval_seconds,
                work_dir=Path(scratch) / name,
                keep_logs_in=logs_folder(config) / name,
            )

        if chosen & LOAD_SECTIONS:
            with stack(
                "load", latency_seconds=config.latency_seconds, clip_bytes=config.clip_bytes
            ) as load:
                _merge(results, asyncio.run(_load_sections(load, config)))
        if chosen & LARGE_FILE_SECTIONS:
            big_clips = bool(chosen & {"memory", "get_video"})
            with stack(
                "large-files",
                latency_seconds=config.large_file_latency_seconds,
                clip_bytes=config.big_clip_bytes if big_clips else config.clip_bytes,
            ) as large_files:
                _merge(results, asyncio.run(_large_file_sections(large_files, config)))
        if "assembly" in chosen:
            with stack(
                "assembly",
                latency_seconds=config.large_file_latency_seconds,
                clip_bytes=config.clip_bytes,
            ) as assembly:
                results["assembly"] = asyncio.run(
                    assembly_speed(
                        assembly,
                        clips=config.assembly_clips,
                        clip_seconds=config.assembly_clip_seconds,
                        size=config.assembly_size,
                        fps=config.assembly_fps,
                        health_interval_seconds=config.health_interval_seconds,
                    )
                )
        if "reference_images" in chosen:
            with stack(
                "reference-images",
                latency_seconds=config.reference_latency_seconds,
                clip_bytes=config.clip_bytes,
            ) as references:
                _merge(results, asyncio.run(_reference_image_sections(references, config)))
    return {name: results[name] for name in SECTIONS if name in results}


def _parameters(config: BenchConfig) -> dict[str, Any]:
    parameters = asdict(config)
    parameters["output"] = str(config.output)
    parameters["cpus"] = os.cpu_count()
    parameters["python"] = platform.python_version()
    parameters["platform"] = platform.platform()
    return parameters


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """Turn SIGTERM into an exception so the stacks' exits still stop their processes."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    # Progress on stderr; WARNING for everything else (httpx logs every request at INFO).
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(message)s")
    logger.setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.monotonic()
    sections = run_benchmark(config)
    parameters = _parameters(config)
    verdicts = evaluate_targets(parameters, sections)
    document = {
        "parameters": parameters,
        "duration_seconds": round(time.monotonic() - started, 1),
        "sections": sections,
        "targets": [verdict.as_json() for verdict in verdicts],
        "logs": str(logs_folder(config)),
    }
    config.output.parent.mkdir(parents=True, exist_ok=True)
    config.output.write_text(json.dumps(document, indent=2) + "\n")
    sys.stdout.write(render_table(parameters, sections, verdicts))
    sys.stdout.write(
        f"\nJSON: {config.output}  logs: {document['logs']}  ({document['duration_seconds']} s)\n"
    )
    return 0
