"""The issue's targets, checked against the figures, and the table printed for people.

Targets hold at N=200, L=5 s, S=5 MiB (and 10 clips of 200 MiB for streaming); a run at
other parameters (e.g. `--smoke`) is still compared, but its verdicts carry a `*`: they say
nothing about the targets. A verdict never changes the exit status: the benchmark reports,
people judge (and no test asserts a timing).
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
TARGET_REQUESTS = 200
TARGET_LATENCY_SECONDS = 5.0
TARGET_CLIP_BYTES = 5 * MIB
TARGET_BIG_CLIP_BYTES = 200 * MIB
TARGET_STREAM_CLIPS = 10
TARGET_IDLE_CONNECTIONS = 2000
TARGET_ASSEMBLY = {"assembly_clips": 12, "assembly_clip_seconds": 8.0, "assembly_fps": 24}
TARGET_REFERENCE_REQUESTS = 10
TARGET_REFERENCE_IMAGE_BYTES = 9_700_000
NOT_AT_TARGET_MARK = "*"


@dataclass(frozen=True)
class Verdict:
    section: str
    figure: str
    value: float | None
    comparison: str
    limit: float
    unit: str
    passed: bool
    at_target_parameters: bool

    def as_json(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def result(self) -> str:
        word = "PASS" if self.passed else "MISS"
        return word if self.at_target_parameters else word + NOT_AT_TARGET_MARK


def _dig(tree: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


@dataclass(frozen=True)
class _Target:
    """One target; `{backend}` in a path or label is filled in for every backend measured."""

    section: str
    path: tuple[str, ...]
    figure: str
    comparison: str
    limit: float | tuple[str, ...]
    """A number, or the path of the figure to compare with (e.g. the request count)."""
    unit: str
    conditions: str
    """Which parameters the target is defined at: "load", "stream", "big", "crowd",
    "assembly", "reference" or "any"."""


TARGETS = (
    _Target(
        "generate",
        ("generate", "{backend}", "succeeded"),
        "{backend}: succeeded",
        "==",
        ("generate", "{backend}", "requests"),
        "",
        "load",
    ),
    _Target(
        "generate",
        ("generate", "{backend}", "wall_over_latency"),
        "{backend}: wall / L",
        "<=",
        1.5,
        "",
        "load",
    ),
    _Target(
        "health",
        ("health", "{backend}", "p99_ms"),
        "{backend}: /health p99",
        "<=",
        100,
        "ms",
        "load",
    ),
    _Target(
        "memory",
        ("memory", "during_generate", "{backend}", "rss_peak_mib"),
        "{backend}: peak RSS during generate",
        "<=",
        300,
        "MiB",
        "load",
    ),
    _Target(
        "memory",
        ("memory", "streaming", "{backend}", "rss_growth_mib"),
        "{backend}: RSS growth, big clips at once",
        "<=",
        64,
        "MiB",
        "stream",
    ),
    _Target(
        "get_video", ("get_video", "throughput_mib_s"), "throughput", ">=", 300, "MiB/s", "big"
    ),
    _Target(
        "create_scenes",
        ("create_scenes", "overhead_p50_ms"),
        "overhead p50",
        "<=",
        15,
        "ms",
        "any",
    ),
    _Target(
        "idle_connections",
        ("idle_connections", "succeeded"),
        "/health answered, idle connections open",
        "==",
        ("idle_connections", "requests"),
        "",
        "crowd",
    ),
    _Target(
        "assembly",
        ("assembly", "service_over_ffmpeg_alone"),
        "render speed, service / ffmpeg alone",
        ">=",
        0.9,
        "",
        "assembly",
    ),
    _Target(
        "assembly",
        ("assembly", "stream_copy_x_realtime"),
        "stream copy through the service",
        ">=",
        100,
        "x realtime",
        "assembly",
    ),
    _Target(
        "assembly",
        ("assembly", "memory", "rss_peak_mib"),
        "peak RSS, server + ffmpeg",
        "<=",
        400,
        "MiB",
        "assembly",
    ),
    _Target(
        "assembly",
        ("assembly", "health", "p99_ms"),
        "/health p99 during a render",
        "<=",
        20,
        "ms",
        "assembly",
    ),
    _Target(
        "reference_images",
        ("reference_images", "{backend}", "succeeded"),
        "{backend}: reference images: succeeded",
        "==",
        ("reference_images", "{backend}", "requests"),
        "",
        "reference",
    ),
    _Target(
        "reference_images",
        ("reference_images", "{backend}", "health", "p99_ms"),
        "{backend}: /health p99, reference images",
        "<=",
        20,
        "ms",
        "reference",
    ),
)

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda value, limit: value <= limit,
    ">=": lambda value, limit: value >= limit,
    "==": lambda value, limit: value == limit,
}


def _conditions_met(parameters: dict[str, Any]) -> dict[str, bool]:
    load = (
        parameters["requests"] == TARGET_REQUESTS
        and parameters["latency_seconds"] == TARGET_LATENCY_SECONDS
        and parameters["clip_bytes"] == TARGET_CLIP_BYTES
    )
    big = parameters["big_clip_bytes"] == TARGET_BIG_CLIP_BYTES
    stream = big and parameters["stream_clips"] == TARGET_STREAM_CLIPS
    crowd = parameters["idle_connections"] == TARGET_IDLE_CONNECTIONS
    assembly = all(parameters[name] == value for name, value in TARGET_ASSEMBLY.items())
    assembly = assembly and tuple(parameters["assembly_size"]) == (1280, 720)
    reference = (
        parameters["reference_requests"] == TARGET_REFERENCE_REQUESTS
        and parameters["reference_image_bytes"] >= TARGET_REFERENCE_IMAGE_BYTES
    )
    return {
        "load": load,
        "big": big,
        "stream": stream,
        "crowd": crowd,
        "assembly": assembly,
        "reference": reference,
        "any": True,
    }


def evaluate_targets(parameters: dict[str, Any], sections: dict[str, Any]) -> list[Verdict]:
    """Every target the issue sets whose figure was measured, for every backend."""
    met = _conditions_met(parameters)
    verdicts = []
    for target in TARGETS:
        per_backend = any("{backend}" in key for key in target.path)
        backends = parameters["backends"]
        if target.section == "reference_images":
            backends = ["mock", *backends]
        for backend in backends if per_backend else [""]:
            path = tuple(key.format(backend=backend) for key in target.path)
            if _dig(sections, *path[:-1]) is None:
                continue
            value = _dig(sections, *path)
            limit = target.limit
            if isinstance(limit, tuple):
                limit = _dig(sections, *(key.format(backend=backend) for key in limit))
            passed = value is not None and _COMPARISONS[target.comparison](value, limit)
            verdicts.append(
                Verdict(
                    section=target.section,
                    figure=target.figure.format(backend=backend),
                    value=value,
                    comparison=target.comparison,
                    limit=limit,
                    unit=target.unit,
                    passed=passed,
                    at_target_parameters=met[target.conditions],
                )
            )
    return verdicts


# --------------------------------------------------------------------------- the table


def _number(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.{digits}f}"
    return f"{value} {unit}".rstrip()


def _shorten(text: str, limit: int = 90) -> str:
    """Error bodies are long; the JSON keeps them, the table shows their start."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ratio(run: dict[str, Any]) -> str:
    return f"{run['succeeded']}/{run['requests']}"


def _cpu(run: dict[str, Any]) -> str:
    return "  ".join(
        f"{name} {run.get(f'{name}_cpu_per_wall_second', 0):.2f}"
        for name in ("server", "fake", "client")
    )


def _rows(parameters: dict[str, Any], sections: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(section, figure, value) for every figure worth reading, in the issue's order."""
    floor = _dig(sections, "generate", "rig_floor")
    if floor is not None:
        yield (
            "1 generate",
            f"rig floor: fake -> {floor['client']}, {_ratio(floor)} clips at once",
            f"{floor['delivery_seconds']:.2f} s ({floor['throughput_mib_s']:.0f} MiB/s)",
        )
    download_floor = _dig(sections, "generate", "download_floor")
    if download_floor is not None:
        yield (
            "1 generate",
            f"download floor: the service's download path alone, {_ratio(download_floor)}",
            f"{download_floor['delivery_seconds']:.2f} s "
            f"({download_floor['throughput_mib_s']:.0f} MiB/s)",
        )
    for backend in parameters["backends"]:
        run = _dig(sections, "generate", backend)
        if run is None:
            continue
        yield "1 generate", f"{backend}: succeeded", _ratio(run)
        yield "1 generate", f"{backend}: wall", _number(run["wall_seconds"], "s")
        yield "1 generate", f"{backend}: wall / L", _number(run["wall_over_latency"])
        yield (
            "1 generate",
            f"{backend}: wall / (L + rig floor)",
            _number(run["wall_over_latency_plus_floor"]),
        )
        yield (
            "1 generate",
            f"{backend}: wall / (L + download floor)",
            _number(run["wall_over_latency_plus_download_floor"]),
        )
        yield (
            "1 generate",
            f"{backend}: latency p50 / p99",
            (f"{_number(run['latency_p50_s'])} / {_number(run['latency_p99_s'], 's')}"),
        )
        yield "1 generate", f"{backend}: CPU s per wall s", _cpu(run)
        for error in run["errors"]:
            yield "1 generate", f"{backend}: error", _shorten(error)
    for backend in parameters["backends"]:
        health = _dig(sections, "health", backend)
        if health is not None:
            yield (
                "2 health",
                f"{backend}: /health p50 / p99 ({health['count']} samples)",
                (f"{_number(health['p50_ms'], digits=1)} / {_number(health['p99_ms'], 'ms', 1)}"),
            )
            yield "2 health", f"{backend}: /health max", _number(health["max_ms"], "ms", 1)
    for backend in parameters["backends"]:
        memory = _dig(sections, "memory", "during_generate", backend)
        if memory is not None:
            yield (
                "3 memory",
                f"{backend}: RSS before / peak during generate",
                (f"{memory['rss_before_mib']:.0f} / {memory['rss_peak_mib']:.0f} MiB"),
            )
    for backend in parameters["backends"]:
        stream = _dig(sections, "memory", "streaming", backend)
        if stream is None:
            continue
        label = f"{backend}: {stream['clips']} x {stream['clip_mib']:.0f} MiB at once"
        yield "3 memory", f"{label}: succeeded", _ratio(stream)
        yield (
            "3 memory",
            f"{label}: RSS before / peak",
            (f"{stream['rss_before_mib']:.0f} / {stream['rss_peak_mib']:.0f} MiB"),
        )
        yield "3 memory", f"{label}: RSS growth", _number(stream["rss_growth_mib"], "MiB", 1)
        yield (
            "3 memory",
            f"{label}: wall, rate",
            (f"{stream['wall_seconds']:.2f} s, {stream['throughput_mib_s']:.0f} MiB/s"),
        )
        yield "3 memory", f"{label}: CPU s per wall s", _cpu(stream)
        for error in stream["errors"]:
            yield "3 memory", f"{backend}: error", _shorten(error)
    video = sections.get("get_video")
    if video is not None:
        size = f"{video.get('file_mib', 0):.0f} MiB"
        yield "4 get_video", f"{size}: succeeded", _ratio(video)
        yield (
            "4 get_video",
            f"{size}: httpx stream+discard (median)",
            _number(video.get("httpx_mib_s"), "MiB/s", 0),
        )
        yield (
            "4 get_video",
            f"{size}: curl -o /dev/null",
            _number(video.get("curl_mib_s"), "MiB/s", 0),
        )
        yield (
            "4 get_video",
            f"{size}: throughput (best client)",
            _number(video["throughput_mib_s"], "MiB/s", 0),
        )
        yield (
            "4 get_video",
            "Range: last MiB byte for byte",
            (
                f"{'match' if video['range_matches'] else 'MISMATCH'} "
                f"(HTTP {video.get('range_status')}, {video.get('range_bytes')} bytes)"
            ),
        )
    scenes = sections.get("create_scenes")
    if scenes is not None:
        yield "5 create_scenes", "succeeded", _ratio(scenes)
        yield "5 create_scenes", "fake latency L", _number(scenes["fake_latency_s"], "s", 3)
        for name in ("sequential", "concurrent", "rig_direct"):
            part = scenes[name]
            yield (
                "5 create_scenes",
                f"overhead p50 / p99, {name} ({part['count']})",
                (f"{_number(part['p50_ms'], digits=1)} / {_number(part['p99_ms'], 'ms', 1)}"),
            )
        yield (
            "5 create_scenes",
            "overhead p50 / p99, all server requests",
            (
                f"{_number(scenes['overhead_p50_ms'], digits=1)} / "
                f"{_number(scenes['overhead_p99_ms'], 'ms', 1)}"
            ),
        )
    idle = sections.get("idle_connections")
    if idle is not None:
        yield from _idle_rows(idle)
    assembly = sections.get("assembly")
    if assembly is not None:
        yield from _assembly_rows(assembly)
    for backend, run in sections.get("reference_images", {}).items():
        yield from _reference_rows(backend, run)


def _assembly_rows(run: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    section = "7 assembly"
    shape = f"{run['clips']} x {run['clip_seconds']:g} s, {run['size']} {run['fps']} fps"
    yield (
        section,
        f"crossfades + song ({shape}): output s per wall s, service",
        f"{_number(run['service_output_seconds_per_second'])} "
        f"({_number(run['service_wall_seconds'], 's')})",
    )
    yield (
        section,
        "the same command, ffmpeg alone",
        f"{_number(run['ffmpeg_alone_output_seconds_per_second'])} "
        f"({_number(run['ffmpeg_alone_wall_seconds'], 's')})",
    )
    yield section, "service / ffmpeg alone", _number(run["service_over_ffmpeg_alone"], digits=3)
    yield (
        section,
        "stream copy: x realtime, service / ffmpeg alone",
        f"{_number(run['stream_copy_x_realtime'], digits=0)} / "
        f"{_number(run['stream_copy_alone_x_realtime'], digits=0)}",
    )
    yield (
        section,
        "/health p50 / p99 during the render",
        f"{_number(run['health']['p50_ms'], digits=1)} / "
        f"{_number(run['health']['p99_ms'], 'ms', 1)}",
    )
    yield section, "peak RSS, server + ffmpeg", _number(run["memory"]["rss_peak_mib"], "MiB", 1)


def _reference_rows(backend: str, run: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    health = run["health"]
    label = f"{backend}: {run['requests']} x {run['body_bytes'] / 1e6:.1f} MB bodies at once"
    yield "8 reference_images", f"{label}: succeeded", _ratio(run)
    yield (
        "8 reference_images",
        f"{backend}: /health p50 / p99 ({health['count']} samples)",
        f"{_number(health['p50_ms'], digits=1)} / {_number(health['p99_ms'], 'ms', 1)}",
    )
    yield "8 reference_images", f"{backend}: /health max", _number(health["max_ms"], "ms", 1)
    yield (
        "8 reference_images",
        f"{backend}: RSS before / peak",
        f"{run['rss_before_mib']:.0f} / {run['rss_peak_mib']:.0f} MiB",
    )
    yield "8 reference_images", f"{backend}: wall", _number(run["wall_seconds"], "s")
    yield "8 reference_images", f"{backend}: CPU s per wall s", _cpu(run)
    for error in run["errors"]:
        yield "8 reference_images", f"{backend}: error", _shorten(error)


def _idle_rows(idle: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    def p50_p99(figures: dict[str, Any]) -> str:
        return f"{_number(figures['p50_ms'], digits=1)} / {_number(figures['p99_ms'], 'ms', 1)}"

    quiet = idle["none_open"]
    yield (
        "6 idle_connections",
        f"/health p50 / p99, none open ({_ratio(quiet)} answered)",
        p50_p99(quiet),
    )
    yield (
        "6 idle_connections",
        f"/health p50 / p99, {idle['connections']} idle open ({_ratio(idle)} answered)",
        p50_p99(idle),
    )
    yield "6 idle_connections", "/health max, idle open", _number(idle["max_ms"], "ms", 1)
    yield (
        "6 idle_connections",
        f"held by the server after {idle['sample_seconds']:g} s",
        f"{idle['held']} / {idle['connections']}",
    )


def render_table(
    parameters: dict[str, Any], sections: dict[str, Any], verdicts: list[Verdict]
) -> str:
    """A fixed-width table of every figure, then one line per target with PASS or MISS."""
    rows = list(_rows(parameters, sections))
    header = ("section", "figure", "value")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = [
        f"Benchmark: N={parameters['requests']}, L={parameters['latency_seconds']:g} s, "
        f"S={parameters['clip_bytes'] / MIB:g} MiB, big clip "
        f"{parameters['big_clip_bytes'] / MIB:g} MiB, backends {','.join(parameters['backends'])}, "
        f"{parameters['cpus']} CPUs",
        "  ".join(text.ljust(width) for text, width in zip(header, widths, strict=True)),
        "  ".join("-" * width for width in widths),
    ]
    lines += ["  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)) for row in rows]
    lines += ["", "Targets (issue 7; reference_images: issue 14):"]
    for verdict in verdicts:
        value = "-" if verdict.value is None else f"{verdict.value:g}"
        lines.append(
            f"  {verdict.result():5}  {verdict.section:13}  {verdict.figure:45}  "
            f"{value} {verdict.comparison} {verdict.limit:g} {verdict.unit}".rstrip()
        )
    if any(not verdict.at_target_parameters for verdict in verdicts):
        lines.append(
            f"  {NOT_AT_TARGET_MARK} measured at other parameters than the target's: "
            "the verdict says nothing about the target"
        )
    return "\n".join(lines) + "\n"
