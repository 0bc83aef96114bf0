"""Crash leftovers in the store: a server killed with SIGKILL mid-download or between a clip
and its sidecar, round after round, leaves after its restart only clips that `get_video`
serves and no temporary file; and startup finds the leftovers without walking what is
stored."""

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from backend.config import REPO_ROOT
from backend.testing.fake_upstream import FakeUpstream
from backend.testing.server_process import live_server_env, mock_server_env, running_server

VIDEO = "/api/mv/generate_video"
ARTIFACT_FOLDERS = ("videos", "character_reference", "create_scenes")
FS_AUDIT_PATH = REPO_ROOT / "backend" / "testing" / "fs_audit"


def clips(outputs: Path) -> set[Path]:
    return set((outputs / "videos").glob("*.mp4"))


def temporaries(outputs: Path) -> list[Path]:
    return [path for path in outputs.rglob("*.tmp") if path.is_file()]


async def assert_every_clip_is_served(client: httpx.AsyncClient, outputs: Path) -> None:
    """Every clip on disk is served whole by `get_video`, and no temporary file is left."""
    for clip in clips(outputs):
        response = await client.head(f"/api/mv/get_video/{clip.stem}")
        assert response.status_code == 200, f"{clip.name} is stored but not served"
        assert int(response.headers["content-length"]) == clip.stat().st_size
    assert not temporaries(outputs)


async def settled(client: httpx.AsyncClient) -> list[dict]:
    """Every job once none is queued or running (jobs interrupted by a kill resume at the
    restart, and their downloads make temporaries again meanwhile)."""
    deadline = time.monotonic() + 120
    while True:
        jobs = (await client.get("/api/mv/jobs", params={"limit": 100})).json()["jobs"]
        if all(job["status"] not in {"queued", "running"} for job in jobs):
            return jobs
        assert time.monotonic() < deadline, "interrupted jobs never finished"
        await asyncio.sleep(0.1)


def downloading(outputs: Path) -> bool:
    """A temporary file holds some of a download."""
    for path in temporaries(outputs):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size:
                return True
    return False


def sidecars(outputs: Path) -> set[Path]:
    return set((outputs / "videos").glob("*.json"))


def moment_to_kill(kind: str, outputs: Path, batch: int) -> Callable[[], bool]:
    if kind == "mid-download":
        return lambda: downloading(outputs)
    if kind == "first-clip":
        before = clips(outputs)
        return lambda: bool(clips(outputs) - before)
    before = sidecars(outputs)
    return lambda: len(sidecars(outputs) - before) >= batch // 2


async def kill_when(
    process_kill: Callable[[], None], condition: Callable[[], bool], within: float
) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the moment to kill never came"
        await asyncio.sleep(0.002)
    process_kill()


ROUNDS = ["mid-download", "first-clip", "mid-batch"] * 2
"""What each round's SIGKILL interrupts: large downloads streaming into the store, or a
batch of small clips finishing together, killed as the first clip is published (its sidecar
not yet written) or as half of the batch is whole (the rest in every state before)."""
BATCH = 12


async def test_sigkill_rounds_leave_only_servable_clips_and_no_temporaries(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    env = live_server_env(outputs, fake_upstream.base_url)
    log = tmp_path / "server.log"
    killed_between_clip_and_sidecar = 0
    for kind in ROUNDS:
        mid_download = kind == "mid-download"
        fake_upstream.clip_bytes = 64 * 1024 * 1024 if mid_download else 256 * 1024
        fake_upstream.latency_seconds = 0.2 if mid_download else 0.5
        requests = 3 if mid_download else BATCH
        with running_server(env, log) as (base_url, process):
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
                await settled(client)
                await assert_every_clip_is_served(client, outputs)
                before = clips(outputs)
                should_kill = moment_to_kill(kind, outputs, requests)
                pending = [
                    asyncio.create_task(
                        client.post(VIDEO, json={"prompt": f"robot {index}", "duration": 4})
                    )
                    for index in range(requests)
                ]
                await kill_when(process.kill, should_kill, within=30)
                await asyncio.gather(*pending, return_exceptions=True)
        new_clips = clips(outputs) - before
        killed_between_clip_and_sidecar += sum(
            not clip.with_suffix(".json").exists() for clip in new_clips
        )
    assert killed_between_clip_and_sidecar, "no round hit the window between clip and sidecar"

    with running_server(env, log) as (base_url, _):
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            jobs = await settled(client)
            await assert_every_clip_is_served(client, outputs)
    assert clips(outputs), "no round left a whole clip to serve"
    assert len(jobs) == sum(3 if kind == "mid-download" else BATCH for kind in ROUNDS)
    assert {job["status"] for job in jobs} == {"succeeded"}, "an interrupted job was lost"
    creates = len(fake_upstream.requests_for("replicate.create"))
    assert creates == len(jobs), "a resumed job paid for a second prediction"
    assert "Traceback" not in log.read_text()


def store_artifacts(outputs: Path, count: int) -> None:
    """`count` clips with sidecars, character references and scene sets, written directly."""
    for folder in ARTIFACT_FOLDERS:
        (outputs / folder).mkdir(parents=True)
    for _ in range(count):
        artifact_id = str(uuid.uuid4())
        (outputs / "videos" / f"{artifact_id}.mp4").write_bytes(b"clip")
        (outputs / "videos" / f"{artifact_id}.json").write_text(json.dumps({"id": artifact_id}))
        (outputs / "character_reference" / f"{artifact_id}.json").write_text("{}")
        scene_set = outputs / "create_scenes" / artifact_id
        scene_set.mkdir()
        (scene_set / "scenes.json").write_text("{}")


@pytest.mark.parametrize("stored", [50, 1000])
async def test_startup_does_not_list_or_open_stored_artifacts(tmp_path: Path, stored: int) -> None:
    outputs = tmp_path / "outputs"
    store_artifacts(outputs, stored)
    audit = tmp_path / "fs-audit.log"
    env = mock_server_env(
        outputs,
        PYTHONPATH=str(FS_AUDIT_PATH),
        MV_FS_AUDIT_ROOT=str(outputs),
        MV_FS_AUDIT_LOG=str(audit),
    )
    with running_server(env, tmp_path / "server.log"):
        pass
    touched = audit.read_text().splitlines()
    assert touched, "the audit hook did not run"
    artifact_roots = tuple(str(outputs / folder) for folder in ARTIFACT_FOLDERS)
    assert not [line for line in touched if line.split(" ", 1)[1].startswith(artifact_roots)]
    assert len(touched) < 20
