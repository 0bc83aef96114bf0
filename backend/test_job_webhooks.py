"""Webhooks of jobs: signed deliveries a receiver verifies with the standardwebhooks
package, the events asked for, retries on the schedule, durability across a kill, and the
refusals at submit time."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from backend.testing.apps import make_settings, serve_app
from backend.testing.server_process import mock_server_env, running_server
from backend.testing.webhook_receiver import WebhookReceiver

VIDEO = "/api/mv/generate_video"
JOBS = "/api/mv/jobs"
ASYNC = {"Prefer": "respond-async"}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CLIP = {"prompt": "A robot dances in the rain", "duration": 4, "backend": "mock"}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as started:
        yield started


def webhook_settings(tmp_path: Path, **overrides: object):
    return make_settings(
        tmp_path,
        mv_mock_mode=True,
        mv_webhook_secret=SECRET,
        mv_webhook_allow_private=True,
        mv_webhook_retry_base_seconds=0.05,
        **overrides,
    )


async def until_delivered(client: httpx.AsyncClient, job_id: str, count: int) -> dict:
    deadline = time.monotonic() + 20
    while True:
        job = (await client.get(f"{JOBS}/{job_id}")).json()
        deliveries = job["webhook"]["deliveries"]
        if len(deliveries) >= count and all(d["delivered_at"] for d in deliveries):
            return job
        assert time.monotonic() < deadline, f"deliveries: {deliveries}"
        await asyncio.sleep(0.05)


async def test_the_final_event_arrives_signed_with_the_job(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    async with serve_app(webhook_settings(tmp_path)) as (_, client):
        answer = await client.post(VIDEO, json={**CLIP, "webhook_url": receiver.url()})
        assert answer.status_code == 200
        job = await until_delivered(client, answer.headers["X-Job-ID"], 1)
    [delivery] = await receiver.wait_for_deliveries(1)
    assert delivery.verified, delivery.verify_error
    payload = Webhook(SECRET).verify(delivery.body, dict(delivery.headers))
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["job_id"] == job["job_id"]
    assert payload["data"]["result"] == answer.json()
    assert payload["timestamp"].endswith("Z")
    [record] = job["webhook"]["deliveries"]
    assert record["event"] == "succeeded"
    assert record["webhook_id"] == delivery.headers["webhook-id"]
    assert record["attempts"] == 1
    assert record["last_status"] == 200
    assert job["webhook"]["url"] == receiver.url()
    assert job["webhook"]["events"] == ["succeeded", "failed", "canceled"]


async def test_only_the_events_asked_for_are_delivered(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    request = {**CLIP, "webhook_url": receiver.url(), "webhook_events": ["running", "succeeded"]}
    async with serve_app(webhook_settings(tmp_path)) as (_, client):
        answer = await client.post(VIDEO, json=request)
        await until_delivered(client, answer.headers["X-Job-ID"], 2)
    types = [delivery.payload["type"] for delivery in receiver.deliveries]
    assert sorted(types) == ["job.running", "job.succeeded"]


async def test_a_failing_receiver_gets_the_same_webhook_id_again_until_it_answers(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.fail_next(3, status=503)
    async with serve_app(webhook_settings(tmp_path)) as (_, client):
        answer = await client.post(VIDEO, json={**CLIP, "webhook_url": receiver.url()})
        job = await until_delivered(client, answer.headers["X-Job-ID"], 1)
    ids = {delivery.headers["webhook-id"] for delivery in receiver.deliveries}
    assert len(receiver.deliveries) == 4
    assert len(ids) == 1
    assert receiver.deliveries[-1].verified
    [record] = job["webhook"]["deliveries"]
    assert record["attempts"] == 4
    assert record["last_status"] == 200


async def test_deliveries_give_up_after_the_last_attempt(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.fail_next(10, status=500)
    settings = webhook_settings(tmp_path, mv_webhook_max_attempts=3)
    async with serve_app(settings) as (_, client):
        answer = await client.post(VIDEO, json={**CLIP, "webhook_url": receiver.url()})
        await receiver.wait_for_deliveries(3)
        await asyncio.sleep(0.5)
        job = (await client.get(f"{JOBS}/{answer.headers['X-Job-ID']}")).json()
    assert len(receiver.deliveries) == 3
    [record] = job["webhook"]["deliveries"]
    assert record["attempts"] == 3
    assert record["last_status"] == 500
    assert record["delivered_at"] is None


async def test_a_webhook_url_without_a_secret_is_a_400(tmp_path: Path) -> None:
    async with serve_app(make_settings(tmp_path, mv_mock_mode=True)) as (_, client):
        answer = await client.post(
            VIDEO, json={**CLIP, "webhook_url": "https://example.com/hook"}, headers=ASYNC
        )
        assert answer.status_code == 400
        assert answer.json()["details"][0]["field"] == "webhook_url"
        assert (await client.get(JOBS)).json()["jobs"] == []


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.7/hook",
        "https://user:pw@example.com/hook",
        "https://[::1]/hook",
    ],
)
async def test_unsafe_webhook_targets_are_refused_at_submit(tmp_path: Path, url: str) -> None:
    settings = make_settings(tmp_path, mv_mock_mode=True, mv_webhook_secret=SECRET)
    async with serve_app(settings) as (_, client):
        answer = await client.post(VIDEO, json={**CLIP, "webhook_url": url}, headers=ASYNC)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "VALIDATION_ERROR"


async def test_a_delivery_pending_at_a_kill_is_sent_after_the_restart(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.fail_next(100, status=503)
    env = mock_server_env(
        tmp_path,
        MV_MOCK_DELAY_SECONDS="0.2",
        MV_WEBHOOK_SECRET=SECRET,
        MV_WEBHOOK_ALLOW_PRIVATE="true",
        MV_WEBHOOK_RETRY_BASE_SECONDS="0.2",
    )
    log = tmp_path / "server.log"
    with running_server(env, log) as (base_url, process):
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            answer = await client.post(VIDEO, json={**CLIP, "webhook_url": receiver.url()})
        await receiver.wait_for_deliveries(1)
        process.kill()
        process.wait()
    receiver.reset()
    with running_server(env, log) as (base_url, _):
        [delivery] = await receiver.wait_for_deliveries(1, within=20)
    assert delivery.verified
    assert delivery.payload["data"]["job_id"] == answer.headers["X-Job-ID"]
