"""Jobs as clients use them: asynchronous submission, the job and its list, cancel, the
event stream, and Idempotency-Key in the job store. In-process app, mock or fake upstream."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.testing import fake_upstream as fake
from backend.testing.apps import live_settings, make_settings, serve_app
from backend.testing.fake_upstream import FakeUpstream

VIDEO = "/api/mv/generate_video"
SCENES = "/api/mv/create_scenes"
JOBS = "/api/mv/jobs"
ASYNC = {"Prefer": "respond-async"}
CLIP = {"prompt": "A robot dances in the rain", "duration": 4, "backend": "mock"}
JOB_FIELDS = {
    "job_id",
    "kind",
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "progress",
    "result",
    "error",
    "cancel_requested",
    "provider_job_id",
    "parent_job_id",
    "retry_of",
    "cost_usd",
    "webhook",
    "urls",
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_mock_delay_seconds=0.3)
    async with serve_app(settings) as (_, client):
        yield client


async def until_final(client: httpx.AsyncClient, job_id: str, within: float = 20) -> dict:
    deadline = time.monotonic() + within
    while True:
        job = (await client.get(f"{JOBS}/{job_id}")).json()
        if job["status"] in {"succeeded", "failed", "canceled"}:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}"
        await asyncio.sleep(0.05)


async def until_status(client: httpx.AsyncClient, job_id: str, status: str) -> dict:
    deadline = time.monotonic() + 20
    while (job := (await client.get(f"{JOBS}/{job_id}")).json())["status"] != status:
        assert time.monotonic() < deadline, f"job still {job['status']}"
        await asyncio.sleep(0.02)
    return job


def sse_events(text: str) -> list[tuple[int, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            assert fields["event"] == "job"
            events.append((int(fields["id"]), json.loads(fields["data"])))
    return events


async def test_respond_async_answers_202_with_the_job_at_once(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(VIDEO, json=CLIP, headers=ASYNC)
    assert answer.status_code == 202
    job = answer.json()
    assert set(job) == JOB_FIELDS
    assert job["status"] in {"queued", "running"}
    assert job["kind"] == "generate_video"
    assert answer.headers["Location"] == f"{JOBS}/{job['job_id']}" == job["urls"]["self"]
    assert answer.headers["Preference-Applied"] == "respond-async"
    assert answer.headers["X-Job-ID"] == job["job_id"]
    done = await until_final(client, job["job_id"])
    assert done["status"] == "succeeded"
    assert done["progress"] == {"stage": "done", "percent": 100, "detail": None}
    assert done["result"]["metadata"]["job_id"] == job["job_id"]
    clip = await client.get(done["result"]["video_url"])
    assert clip.status_code == 200
    assert len(clip.content) == done["result"]["metadata"]["file_size_bytes"]


async def test_a_synchronous_answer_is_the_jobs_result(client: httpx.AsyncClient) -> None:
    answer = await client.post(VIDEO, json=CLIP)
    assert answer.status_code == 200
    job_id = answer.headers["X-Job-ID"]
    assert answer.json()["metadata"]["job_id"] == job_id
    job = (await client.get(f"{JOBS}/{job_id}")).json()
    assert job["status"] == "succeeded"
    assert job["result"] == answer.json()
    assert job["started_at"] >= job["created_at"]
    assert job["finished_at"] >= job["started_at"]


async def test_a_failed_job_holds_the_error_the_synchronous_call_answers(
    client: httpx.AsyncClient,
) -> None:
    request = {**CLIP, "prompt": "a storm [mock:content_policy]"}
    answer = await client.post(VIDEO, json=request)
    assert answer.status_code == 422
    job = (await client.get(f"{JOBS}/{answer.headers['X-Job-ID']}")).json()
    assert job["status"] == "failed"
    assert job["result"] is None
    error = dict(job["error"])
    assert error.pop("status") == 422
    body = answer.json()
    for field in ("error", "error_code", "message", "backend_used", "details"):
        assert error[field] == body[field]


async def test_an_invalid_request_is_refused_before_it_becomes_a_job(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(VIDEO, json={**CLIP, "aspect_ratio": "4:3"}, headers=ASYNC)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "VALIDATION_ERROR"
    missing = await client.post(
        VIDEO,
        json={**CLIP, "reference_image_id": "7d9f3b1e-0000-4000-8000-000000000000"},
        headers=ASYNC,
    )
    assert missing.status_code == 404
    assert (await client.get(JOBS)).json()["jobs"] == []


async def test_unknown_job_is_a_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    for path in ("", "/events"):
        answer = await client.get(f"{JOBS}/no-such-job{path}")
        assert answer.status_code == 404
        assert answer.json()["error_code"] == "NOT_FOUND"
    cancel = await client.post(f"{JOBS}/no-such-job/cancel")
    assert cancel.status_code == 404


async def test_the_list_pages_newest_first_and_filters(client: httpx.AsyncClient) -> None:
    ids = [
        (await client.post(VIDEO, json={**CLIP, "seed": seed})).headers["X-Job-ID"]
        for seed in range(3)
    ]
    scenes = await client.post(SCENES, json={"idea": "a robot", "character_description": "a"})
    first = (await client.get(JOBS, params={"limit": 2, "kind": "generate_video"})).json()
    assert [job["job_id"] for job in first["jobs"]] == ids[::-1][:2]
    rest = (
        await client.get(
            JOBS, params={"limit": 2, "kind": "generate_video", "cursor": first["next_cursor"]}
        )
    ).json()
    assert [job["job_id"] for job in rest["jobs"]] == ids[:1]
    assert rest["next_cursor"] is None
    everything = (await client.get(JOBS, params={"status": "succeeded"})).json()["jobs"]
    assert everything[0]["job_id"] == scenes.headers["X-Job-ID"]
    assert len(everything) == 4
    assert (await client.get(JOBS, params={"status": "failed"})).json()["jobs"] == []


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"cursor": "not-a-cursor"}, {"status": "done"}]
)
async def test_bad_list_parameters_are_a_400(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    answer = await client.get(JOBS, params=params)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "VALIDATION_ERROR"


async def test_jobs_are_per_caller_when_keys_are_on(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_api_keys="alice-key,bob-key")
    alice, bob = {"X-API-Key": "alice-key"}, {"X-API-Key": "bob-key"}
    async with serve_app(settings) as (_, client):
        job_id = (await client.post(VIDEO, json=CLIP, headers=alice)).headers["X-Job-ID"]
        assert (await client.get(f"{JOBS}/{job_id}", headers=alice)).status_code == 200
        assert (await client.get(f"{JOBS}/{job_id}", headers=bob)).status_code == 404
        assert (await client.get(f"{JOBS}/{job_id}/events", headers=bob)).status_code == 404
        assert (await client.post(f"{JOBS}/{job_id}/cancel", headers=bob)).status_code == 404
        assert (await client.get(JOBS, headers=bob)).json()["jobs"] == []
        assert len((await client.get(JOBS, headers=alice)).json()["jobs"]) == 1


async def test_a_queued_job_is_canceled_at_once_and_never_runs(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, mv_mock_mode=True, mv_mock_delay_seconds=1.0, mv_max_concurrent_generations=1
    )
    async with serve_app(settings) as (_, client):
        first = (await client.post(VIDEO, json=CLIP, headers=ASYNC)).json()
        second = (await client.post(VIDEO, json={**CLIP, "seed": 2}, headers=ASYNC)).json()
        await until_status(client, first["job_id"], "running")
        canceled = await client.post(f"{JOBS}/{second['job_id']}/cancel")
        assert canceled.status_code == 202
        assert canceled.json()["status"] == "canceled"
        assert canceled.json()["cancel_requested"] is True
        assert (await until_final(client, first["job_id"]))["status"] == "succeeded"
        await asyncio.sleep(0.5)
        job = (await client.get(f"{JOBS}/{second['job_id']}")).json()
        assert job["status"] == "canceled"
        assert job["started_at"] is None
        assert job["result"] is None
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 1


async def test_a_running_job_stops_within_two_seconds(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_mock_delay_seconds=30)
    async with serve_app(settings) as (_, client):
        job = (await client.post(VIDEO, json=CLIP, headers=ASYNC)).json()
        await until_status(client, job["job_id"], "running")
        asked = time.monotonic()
        answer = await client.post(f"{JOBS}/{job['job_id']}/cancel")
        assert answer.status_code == 202
        ended = await until_final(client, job["job_id"], within=2)
        assert time.monotonic() - asked < 2
        assert ended["status"] == "canceled"
        assert ended["result"] is None
        assert ended["error"]["status"] == 409
        again = await client.post(f"{JOBS}/{job['job_id']}/cancel")
        assert again.status_code == 409
        assert again.json()["error_code"] == "CONFLICT"
    assert not list((tmp_path / "videos").glob("*.mp4"))


async def test_events_stream_every_change_and_close_after_the_final_one(
    client: httpx.AsyncClient,
) -> None:
    job = (await client.post(VIDEO, json=CLIP, headers=ASYNC)).json()
    stream = await client.get(job["urls"]["events"])
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = sse_events(stream.text)
    ids = [event_id for event_id, _ in events]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    statuses = [data["status"] for _, data in events]
    assert statuses[-1] == "succeeded"
    assert "running" in statuses
    assert statuses.count("succeeded") == 1
    assert events[-1][1]["result"]["metadata"]["job_id"] == job["job_id"]


async def test_last_event_id_replays_only_later_events(client: httpx.AsyncClient) -> None:
    job_id = (await client.post(VIDEO, json=CLIP)).headers["X-Job-ID"]
    everything = sse_events(
        (await client.get(f"{JOBS}/{job_id}/events", headers={"Last-Event-ID": "0"})).text
    )
    assert everything[0][0] == 1
    assert everything[0][1]["status"] == "queued"
    later = sse_events(
        (await client.get(f"{JOBS}/{job_id}/events", headers={"Last-Event-ID": "2"})).text
    )
    assert [event_id for event_id, _ in later] == [event_id for event_id, _ in everything[2:]]
    now = sse_events((await client.get(f"{JOBS}/{job_id}/events")).text)
    assert len(now) == 1
    assert now[0] == everything[-1]
    past_the_end = sse_events(
        (await client.get(f"{JOBS}/{job_id}/events", headers={"Last-Event-ID": "999"})).text
    )
    assert past_the_end == everything[-1:]


async def test_one_key_is_one_job_under_concurrent_repeats(client: httpx.AsyncClient) -> None:
    headers = {**ASYNC, "Idempotency-Key": "fifty-at-once"}
    answers = await asyncio.gather(
        *(client.post(VIDEO, json=CLIP, headers=headers) for _ in range(50))
    )
    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.json()["job_id"] for answer in answers}) == 1
    assert len((await client.get(JOBS)).json()["jobs"]) == 1


async def test_a_synchronous_repeat_of_an_async_key_waits_for_the_same_job(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "async-then-sync"}
    job = (await client.post(VIDEO, json=CLIP, headers={**headers, **ASYNC})).json()
    answer = await client.post(VIDEO, json=CLIP, headers=headers)
    assert answer.status_code == 200
    assert answer.headers["X-Job-ID"] == job["job_id"]
    assert answer.json()["metadata"]["job_id"] == job["job_id"]


async def test_a_failed_keys_job_lets_the_key_start_a_new_one(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("replicate.create", fake.PredictionFailed())
    settings = live_settings(tmp_path, fake_upstream.base_url)
    headers = {"Idempotency-Key": "fail-then-retry"}
    request = {**CLIP, "backend": "replicate"}
    async with serve_app(settings) as (_, client):
        failed = await client.post(VIDEO, json=request, headers=headers)
        assert failed.status_code == 502
        retried = await client.post(VIDEO, json=request, headers=headers)
        assert retried.status_code == 200, retried.text
        assert retried.headers["X-Job-ID"] != failed.headers["X-Job-ID"]
        again = await client.post(VIDEO, json=request, headers=headers)
        assert again.headers["X-Job-ID"] == retried.headers["X-Job-ID"]
    assert len(fake_upstream.requests_for("replicate.create")) == 2


async def test_cancel_reaches_the_replicate_prediction(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("replicate.create", fake.SlowGeneration(60))
    settings = live_settings(tmp_path, fake_upstream.base_url)
    async with serve_app(settings) as (_, client):
        job = (
            await client.post(VIDEO, json={**CLIP, "backend": "replicate"}, headers=ASYNC)
        ).json()
        running = await until_status(client, job["job_id"], "running")
        deadline = time.monotonic() + 10
        while running["provider_job_id"] is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
            running = (await client.get(f"{JOBS}/{job['job_id']}")).json()
        await client.post(f"{JOBS}/{job['job_id']}/cancel")
        ended = await until_final(client, job["job_id"])
        deadline = time.monotonic() + 10
        while not fake_upstream.requests_for("replicate.cancel"):
            assert time.monotonic() < deadline, "the prediction was never canceled upstream"
            await asyncio.sleep(0.05)
    assert ended["status"] == "canceled"
    assert "provider job" in ended["error"]["message"]
    assert running["provider_job_id"] in fake_upstream.requests_for("replicate.cancel")[0].path


async def test_a_gemini_job_says_its_operation_cannot_be_canceled(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.inject("gemini.predict_long_running", fake.SlowGeneration(60))
    settings = live_settings(tmp_path, fake_upstream.base_url)
    async with serve_app(settings) as (_, client):
        job = (await client.post(VIDEO, json={**CLIP, "backend": "gemini"}, headers=ASYNC)).json()
        await until_status(client, job["job_id"], "running")
        await client.post(f"{JOBS}/{job['job_id']}/cancel")
        ended = await until_final(client, job["job_id"])
    assert ended["status"] == "canceled"
    assert "cannot cancel" in ended["error"]["message"]


async def test_a_full_lane_is_a_503_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        mv_mock_mode=True,
        mv_mock_delay_seconds=2,
        mv_max_concurrent_generations=1,
        mv_max_queued_generations=1,
    )
    async with serve_app(settings) as (_, client):
        for seed in (1, 2):
            answer = await client.post(VIDEO, json={**CLIP, "seed": seed}, headers=ASYNC)
            assert answer.status_code == 202
        busy = await client.post(VIDEO, json={**CLIP, "seed": 3}, headers=ASYNC)
        assert busy.status_code == 503
        assert busy.json()["error_code"] == "SERVER_BUSY"
        assert int(busy.headers["Retry-After"]) > 0
        assert len((await client.get(JOBS)).json()["jobs"]) == 2
