"""Jobs outlive their process: real servers killed with SIGKILL or stopped with SIGTERM
mid-job, started again on the same store, with the fake provider counting every create."""

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from backend.testing.fake_upstream import FakeUpstream
from backend.testing.server_process import (
    live_server_env,
    mock_server_env,
    running_server,
    wait_for,
)

VIDEO = "/api/mv/generate_video"
JOBS = "/api/mv/jobs"
ASYNC = {"Prefer": "respond-async"}
CLIP = {"prompt": "A robot dances in the rain", "duration": 4}


async def job(base_url: str, job_id: str) -> dict:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return (await client.get(f"{JOBS}/{job_id}")).json()


async def post(base_url: str, path: str, **options: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await client.post(path, **options)  # type: ignore[arg-type]


async def until(
    base_url: str, job_id: str, predicate: Callable[[dict], object], within: float = 30
) -> dict:
    deadline = time.monotonic() + within
    while not predicate(current := await job(base_url, job_id)):
        assert time.monotonic() < deadline, f"job stayed {current['status']}"
        await asyncio.sleep(0.1)
    return current


def final(current: dict) -> bool:
    return current["status"] in {"succeeded", "failed", "canceled"}


@pytest.mark.parametrize(
    ("backend", "create_route"),
    [("replicate", "replicate.create"), ("gemini", "gemini.predict_long_running")],
)
async def test_kill_9_while_polling_resumes_the_same_provider_job(
    fake_upstream: FakeUpstream, tmp_path: Path, backend: str, create_route: str
) -> None:
    fake_upstream.latency_seconds = 4
    env = live_server_env(tmp_path, fake_upstream.base_url)
    log = tmp_path / "server.log"
    with running_server(env, log) as (base_url, process):
        submitted = await post(base_url, VIDEO, json={**CLIP, "backend": backend}, headers=ASYNC)
        job_id = submitted.json()["job_id"]
        recorded = await until(base_url, job_id, lambda current: current["provider_job_id"])
        process.kill()
        process.wait()
    assert len(fake_upstream.requests_for(create_route)) == 1
    with running_server(env, log) as (base_url, _):
        done = await until(base_url, job_id, final, within=60)
        assert done["status"] == "succeeded", done["error"]
        assert done["provider_job_id"] == recorded["provider_job_id"]
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            clip = await client.get(done["result"]["video_url"])
        assert clip.status_code == 200
        assert len(clip.content) == done["result"]["metadata"]["file_size_bytes"]
    assert len(fake_upstream.requests_for(create_route)) == 1, "a second provider job was paid"


async def test_kill_9_with_jobs_queued_runs_each_once_after_the_restart(tmp_path: Path) -> None:
    env = mock_server_env(tmp_path, MV_MOCK_DELAY_SECONDS="2", MV_MAX_CONCURRENT_GENERATIONS="1")
    log = tmp_path / "server.log"
    with running_server(env, log) as (base_url, process):
        ids = [
            (await post(base_url, VIDEO, json={**CLIP, "seed": seed}, headers=ASYNC)).json()[
                "job_id"
            ]
            for seed in range(3)
        ]
        await until(base_url, ids[0], lambda current: current["status"] == "running")
        assert (await job(base_url, ids[2]))["status"] == "queued"
        process.kill()
        process.wait()
    with running_server(env, log) as (base_url, _):
        ended = [await until(base_url, job_id, final, within=60) for job_id in ids]
    assert [current["status"] for current in ended] == ["succeeded"] * 3
    assert len({current["result"]["video_id"] for current in ended}) == 3
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 3


async def test_sigterm_answers_a_waiting_client_503_and_the_job_resumes(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.latency_seconds = 6
    env = live_server_env(tmp_path, fake_upstream.base_url, MV_SHUTDOWN_GRACE_SECONDS="2")
    log = tmp_path / "server.log"
    answers: list[httpx.Response] = []
    with running_server(env, log) as (base_url, process):
        waiting = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{base_url}{VIDEO}", json={**CLIP, "backend": "replicate"}, timeout=60)
            )
        )
        waiting.start()
        await wait_for(lambda: bool(fake_upstream.requests_for("replicate.create")), within=20)
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(waiting.join, 30)
        assert process.wait(timeout=30) in {0, -signal.SIGTERM}, "uvicorn exits by the signal"
    [answer] = answers
    assert answer.status_code == 503
    assert answer.json()["error_code"] == "SERVER_BUSY"
    assert int(answer.headers["Retry-After"]) > 0
    job_id = answer.headers["X-Job-ID"]
    assert fake_upstream.requests_for("replicate.cancel") == []
    with running_server(env, log) as (base_url, _):
        done = await until(base_url, job_id, final, within=60)
    assert done["status"] == "succeeded", done["error"]
    assert len(fake_upstream.requests_for("replicate.create")) == 1


async def test_a_key_sent_five_times_at_once_is_one_paid_job_every_round(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = live_server_env(tmp_path, fake_upstream.base_url)
    rounds = 30
    with running_server(env, tmp_path / "server.log") as (base_url, _):
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            for number in range(rounds):
                headers = {**ASYNC, "Idempotency-Key": f"round-{number}"}
                request = {**CLIP, "backend": "replicate", "seed": number}
                answers = await asyncio.gather(
                    *(client.post(VIDEO, json=request, headers=headers) for _ in range(5))
                )
                assert {answer.status_code for answer in answers} == {202}
                assert len({answer.json()["job_id"] for answer in answers}) == 1
            page = (await client.get(JOBS, params={"limit": 100})).json()
            for current in page["jobs"]:
                await until(base_url, current["job_id"], final)
    assert len(page["jobs"]) == rounds
    assert len(fake_upstream.requests_for("replicate.create")) == rounds


def test_a_second_process_on_the_same_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    env = mock_server_env(tmp_path)
    second_log = tmp_path / "second.log"
    with (
        running_server(env, tmp_path / "first.log"),
        pytest.raises(RuntimeError, match="during startup"),
        running_server(env, second_log),
    ):
        pass
    assert "another process is already serving the job store" in second_log.read_text()
    assert (tmp_path / "mv.sqlite3").exists()
