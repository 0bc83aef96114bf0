"""The benchmark's smoke preset runs end to end, so the benchmark cannot rot unnoticed.

It runs the one documented command as a subprocess (real server, real fake upstream) and
checks only that it finished and reported every figure with every request succeeded.
Timings are deliberately not asserted: they belong to people reading the figures.
"""

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backend.bench.processes import REPO_ROOT

SMOKE_TIMEOUT_SECONDS = 60
BACKENDS = ("replicate", "gemini")
NUMERIC_FIGURES = {
    "generate": [
        ("rig_floor", "delivery_seconds"),
        ("download_floor", "delivery_seconds"),
        *[(backend, "wall_over_latency") for backend in BACKENDS],
        *[(backend, "wall_over_latency_plus_floor") for backend in BACKENDS],
        *[(backend, "wall_over_latency_plus_download_floor") for backend in BACKENDS],
        *[(backend, "latency_p50_s") for backend in BACKENDS],
        *[(backend, "latency_p99_s") for backend in BACKENDS],
    ],
    "health": [(backend, figure) for backend in BACKENDS for figure in ("p50_ms", "p99_ms")],
    "memory": [
        *[("during_generate", backend, "rss_peak_mib") for backend in BACKENDS],
        *[("streaming", backend, "rss_growth_mib") for backend in BACKENDS],
    ],
    "get_video": [("throughput_mib_s",), ("httpx_mib_s",)],
    "create_scenes": [("overhead_p50_ms",), ("overhead_p99_ms",)],
    "idle_connections": [("p50_ms",), ("p99_ms",), ("held",)],
    "assembly": [
        ("service_over_ffmpeg_alone",),
        ("stream_copy_x_realtime",),
        ("memory", "rss_peak_mib"),
        ("health", "p99_ms"),
    ],
    "reference_images": [
        (backend, "health", figure)
        for backend in ("mock", *BACKENDS)
        for figure in ("p50_ms", "p99_ms")
    ],
}


def _dig(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _request_counts(tree: Any, where: str = "") -> list[tuple[str, int, int]]:
    """(where, requests, succeeded) for every figure dict that counts requests."""
    if not isinstance(tree, dict):
        return []
    found = [(where, tree["requests"], tree["succeeded"])] if "requests" in tree else []
    for key, value in tree.items():
        found += _request_counts(value, f"{where}.{key}")
    return found


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output: Path = tmp_path_factory.mktemp("bench") / "smoke.json"
    completed = subprocess.run(
        [sys.executable, "-m", "backend.bench", "--smoke", "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Targets (issue 7" in completed.stdout
    return json.loads(output.read_text())


@pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 10)
def test_smoke_run_reports_every_section_with_numeric_figures(
    smoke_report: dict[str, Any],
) -> None:
    sections = smoke_report["sections"]
    assert set(sections) == set(NUMERIC_FIGURES)
    for section, paths in NUMERIC_FIGURES.items():
        for path in paths:
            value = _dig(sections[section], path)
            assert isinstance(value, int | float), (section, path, value)
            assert math.isfinite(value), (section, path, value)
    assert smoke_report["targets"], "no target was evaluated"


@pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 10)
def test_smoke_run_has_every_request_succeed(smoke_report: dict[str, Any]) -> None:
    counts = _request_counts(smoke_report["sections"])
    assert len(counts) >= 8, counts
    assert all(requests > 0 for _, requests, _ in counts), counts
    assert [(where, ok, total) for where, total, ok in counts if ok != total] == []
    assert smoke_report["sections"]["get_video"]["range_matches"] is True
