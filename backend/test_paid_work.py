"""Money is not spent for nothing, waiting is bounded, and large images do not stall the loop.

Every test drives a real server process over real sockets; the fake provider counts each
paid create. Full and read-only volumes are real tmpfs mounts (skipped where this process
may not mount one).
"""

import asyncio
import base64
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image

from backend.bench.probes import HealthSampler
from backend.testing import fake_upstream as fake
from backend.testing.apps import TEST_GEMINI_KEY, TEST_REPLICATE_TOKEN
from backend.testing.fake_upstream import FakeUpstream
from backend.testing.server_process import running_server, send_and_hang_up, wait_for

VIDEO = "/api/mv/generate_video"
IMAGE = "/api/mv/generate_character_reference"
SCENES = "/api/mv/create_scenes"
CLIP_REQUEST = {"prompt": "A robot dances in the rain", "duration": 4}
JSON_CONTENT = {"content-type": "application/json"}
PAID_CREATES = ("replicate.create", "gemini.predict_long_running", "gemini.generate_content")
EVERY_GENERATION = [
    (VIDEO, CLIP_REQUEST),
    (VIDEO, {**CLIP_REQUEST, "backend": "gemini"}),
    (VIDEO, {**CLIP_REQUEST, "backend": "mock"}),
    (IMAGE, {"character_description": "Silver robot with a red shield"}),
    (SCENES, {"idea": "A robot finds music", "character_description": "Silver robot"}),
]


def live_env(fake_upstream: FakeUpstream, outputs: Path, **extra: str) -> dict[str, str]:
    return {
        "MV_MOCK_MODE": "false",
        "MV_OUTPUT_DIR": str(outputs),
        "REPLICATE_API_TOKEN": TEST_REPLICATE_TOKEN,
        "GEMINI_API_KEY": TEST_GEMINI_KEY,
        "REPLICATE_BASE_URL": fake_upstream.base_url,
        "GOOGLE_GEMINI_BASE_URL": fake_upstream.base_url,
        "MV_POLL_INTERVAL_SECONDS": "0.05",
        "MV_MOCK_DELAY_SECONDS": "0",
        "MV_API_KEYS": "",
        **extra,
    }


def job_store_beside(outputs: Path) -> str:
    """A job store outside a volume the test fills or makes read-only, as an operator would
    place it (`MV_DATABASE_URL`): the test is about the artifact store."""
    return f"sqlite:///{outputs.parent / 'jobs.sqlite3'}"


def paid_creates(fake_upstream: FakeUpstream) -> int:
    return sum(len(fake_upstream.requests_for(route)) for route in PAID_CREATES)


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted at `path` with mount `options` (e.g. `ro,size=1m`)."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(volume: Path) -> None:
    """Write to `volume` until it has no byte left."""
    with (volume / "filler").open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


async def answers_507_and_pays_nothing(base_url: str, fake_upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for path, body in EVERY_GENERATION:
            response = await client.post(path, json=body)
            assert response.status_code == 507, (path, body, response.text)
            assert response.json()["error_code"] == "INSUFFICIENT_STORAGE"
    assert paid_creates(fake_upstream) == 0


# ---- 1. the store is checked before any paid call (mock too: it answers as live does)


async def test_a_store_with_less_than_min_free_bytes_is_a_507_before_any_provider_call(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = live_env(fake_upstream, tmp_path / "outputs", MV_MIN_FREE_BYTES=str(2**62))
    with running_server(env, tmp_path / "server.log") as (base_url, _):
        await answers_507_and_pays_nothing(base_url, fake_upstream)


async def test_a_full_volume_is_a_507_before_any_provider_call(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "outputs", "size=1m") as outputs:
        fill(outputs)
        env = live_env(
            fake_upstream, outputs, MV_MIN_FREE_BYTES="0", MV_DATABASE_URL=job_store_beside(outputs)
        )
        with running_server(env, tmp_path / "server.log") as (base_url, _):
            await answers_507_and_pays_nothing(base_url, fake_upstream)


async def test_a_read_only_volume_is_a_507_before_any_provider_call(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "outputs", "ro,size=1m") as outputs:
        env = live_env(
            fake_upstream, outputs, MV_MIN_FREE_BYTES="0", MV_DATABASE_URL=job_store_beside(outputs)
        )
        with running_server(env, tmp_path / "server.log") as (base_url, _):
            await answers_507_and_pays_nothing(base_url, fake_upstream)


# ---- 2. a request whose client left while it waited is dropped before paying


async def test_requests_whose_clients_left_while_waiting_for_a_slot_pay_nothing(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.latency_seconds = 3
    env = live_env(fake_upstream, tmp_path / "outputs", MV_MAX_CONCURRENT_GENERATIONS="1")
    log = tmp_path / "server.log"
    with running_server(env, log) as (base_url, _):
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            first = asyncio.create_task(client.post(VIDEO, json=CLIP_REQUEST))
            await wait_for(lambda: paid_creates(fake_upstream) == 1, within=10)
            for index in range(4):
                body = {**CLIP_REQUEST, "prompt": f"abandoned {index}"}
                await asyncio.to_thread(send_and_hang_up, base_url, VIDEO, body, {})
            assert (await first).status_code == 200
            await wait_for(lambda: log.read_text().count("dropped unpaid") == 4, within=10)
            after = await client.post(VIDEO, json=CLIP_REQUEST)
    assert after.status_code == 200
    assert paid_creates(fake_upstream) == 2


async def test_a_keyed_request_whose_client_left_while_waiting_still_runs_for_its_key(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.latency_seconds = 2
    env = live_env(fake_upstream, tmp_path / "outputs", MV_MAX_CONCURRENT_GENERATIONS="1")
    key = {"Idempotency-Key": "left-while-queued"}
    with running_server(env, tmp_path / "server.log") as (base_url, _):
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            first = asyncio.create_task(client.post(VIDEO, json=CLIP_REQUEST))
            await wait_for(lambda: paid_creates(fake_upstream) == 1, within=10)
            await asyncio.to_thread(send_and_hang_up, base_url, VIDEO, CLIP_REQUEST, key)
            assert (await first).status_code == 200
            again = await client.post(VIDEO, json=CLIP_REQUEST, headers=key)
    assert again.status_code == 200
    assert paid_creates(fake_upstream) == 2


# ---- 3. the queue is bounded


async def test_a_request_beyond_the_queue_is_a_503_server_busy_and_pays_nothing(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.latency_seconds = 2
    env = live_env(
        fake_upstream,
        tmp_path / "outputs",
        MV_MAX_CONCURRENT_GENERATIONS="1",
        MV_MAX_QUEUED_GENERATIONS="2",
    )
    log = tmp_path / "server.log"
    with running_server(env, log) as (base_url, _):
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            admitted = [asyncio.create_task(client.post(VIDEO, json=CLIP_REQUEST))]
            await wait_for(lambda: paid_creates(fake_upstream) == 1, within=10)
            admitted += [asyncio.create_task(client.post(VIDEO, json=CLIP_REQUEST)) for _ in "ab"]
            await asyncio.sleep(0.5)
            refused = await client.post(VIDEO, json=CLIP_REQUEST)
            assert paid_creates(fake_upstream) == 1
            answers = await asyncio.gather(*admitted)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error_code"] == "SERVER_BUSY"
    assert int(refused.headers["Retry-After"]) > 0
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert paid_creates(fake_upstream) == 3


# ---- 4. a paid result survives a failed write after it


async def test_a_clip_whose_sidecar_cannot_be_written_is_still_delivered(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    volume_bytes = 4 * 1024 * 1024
    # The clip fills the volume but for the page of its pending marker: none is left after it.
    fake_upstream.clip_bytes = volume_bytes - 4096
    log = tmp_path / "server.log"
    with tmpfs(tmp_path / "outputs", f"size={volume_bytes}") as outputs:
        env = live_env(
            fake_upstream, outputs, MV_MIN_FREE_BYTES="0", MV_DATABASE_URL=job_store_beside(outputs)
        )
        with running_server(env, log) as (base_url, _):
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
                response = await client.post(VIDEO, json=CLIP_REQUEST)
            assert response.status_code == 200, response.text
            clip = Path(response.json()["video_path"])
            assert clip.stat().st_size == fake_upstream.clip_bytes
            assert not clip.with_suffix(".json").exists()
    assert response.json()["metadata"]["file_size_bytes"] == fake_upstream.clip_bytes
    assert paid_creates(fake_upstream) == 1
    assert "could not store the sidecar" in log.read_text()


# ---- 5. the output folder removed while clips download


async def test_removing_the_output_folder_while_clips_download_loses_none(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    clips = 8
    fake_upstream.clip_bytes = 4 * 1024 * 1024
    fake_upstream.inject(
        "replicate.download", fake.PauseDownload(after_bytes=1024 * 1024, seconds=2), times=clips
    )
    outputs = tmp_path / "outputs"
    # The fake pauses before the first slice that crosses `after_bytes`, here after the clip's
    # first hundred bytes, which the writer still holds in memory: a download caught in the
    # pause has an empty staged file. All are caught once every one is staged and no clip
    # is published yet (a clip published before the removal would go with the folder).
    staged = lambda: list((outputs / ".staging").glob("*.tmp"))  # noqa: E731
    published = lambda: list((outputs / "videos").glob("*.mp4"))  # noqa: E731
    env = live_env(fake_upstream, outputs, MV_DATABASE_URL=job_store_beside(outputs))
    with running_server(env, tmp_path / "server.log") as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            pending = [
                asyncio.create_task(client.post(VIDEO, json={**CLIP_REQUEST, "prompt": f"{i}"}))
                for i in range(clips)
            ]
            await wait_for(lambda: len(staged()) == clips and not published(), within=30)
            outputs.rename(tmp_path / "removed")  # the whole folder vanishes at once
            shutil.rmtree(tmp_path / "removed")
            answers = await asyncio.gather(*pending)
            assert [answer.status_code for answer in answers] == [200] * clips, answers[0].text
            for answer in answers:
                video_id = answer.json()["video_id"]
                info = await client.get(f"/api/mv/get_video/{video_id}/info")
                assert info.json()["exists"] is True
                assert info.json()["file_size_bytes"] == fake_upstream.clip_bytes
    assert len(fake_upstream.requests_for("replicate.create")) == clips
    assert len(fake_upstream.requests_for("replicate.download")) == 2 * clips


# ---- 6. large reference images do not stall the event loop


def reference_image_base64(side: int = 1800) -> str:
    """A PNG of noise (it does not compress): about 9.7 MB, 13 MB as base64."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode()


async def test_ten_13_mb_reference_images_at_once_do_not_stall_health(tmp_path: Path) -> None:
    encoded = reference_image_base64()
    body = json.dumps({**CLIP_REQUEST, "backend": "mock", "reference_image_base64": encoded})
    env = {
        "MV_MOCK_MODE": "true",
        "MV_OUTPUT_DIR": str(tmp_path / "outputs"),
        "MV_MOCK_DELAY_SECONDS": "1",
        "MV_API_KEYS": "",
    }
    with running_server(env, tmp_path / "server.log") as (base_url, _):
        clients = [httpx.AsyncClient(base_url=base_url, timeout=60) for _ in range(10)]
        try:
            with HealthSampler(base_url, interval=0.01) as health:
                answers = await asyncio.gather(
                    *(
                        client.post(
                            VIDEO, content=body, headers={"content-type": "application/json"}
                        )
                        for client in clients
                    )
                )
        finally:
            for client in clients:
                await client.aclose()
    assert [answer.status_code for answer in answers] == [200] * len(answers)
    # Only "never stalled for a second": the p99 itself is the benchmark's figure (section 8,
    # `reference_images`); on a shared CI machine it varied from 56 to 156 ms.
    assert health.summary()["p99_ms"] < 1000, health.summary()
