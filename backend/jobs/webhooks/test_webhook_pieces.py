"""The webhook pieces the outbox calls, against a real receiver on loopback: which targets
are refused (at submit and again at delivery), what a delivery looks like and is signed
with, which answers count as delivered, and the retry schedule."""

import asyncio
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
from datetime import datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from backend.config import REPO_ROOT, Settings
from backend.jobs.webhooks.schedule import retry_delay_seconds, should_retry
from backend.jobs.webhooks.sender import AttemptResult, WebhookSender
from backend.jobs.webhooks.signing import check_webhook_secret, new_webhook_secret
from backend.jobs.webhooks.targets import (
    DEFAULT_WEBHOOK_EVENTS,
    WebhookFields,
    check_webhook_fields,
    check_webhook_url,
    effective_webhook_events,
    resolve_public,
)
from backend.mv.errors import ValidationFailed
from backend.testing.server_process import free_port
from backend.testing.webhook_receiver import REDIRECT_TARGET, WebhookReceiver

SECRET = new_webhook_secret()
JOB = {
    "job_id": "6f1c0c57-3f43-4a44-9d3e-1c1b2b3c4d5e",
    "kind": "generate_video",
    "status": "succeeded",
}


@pytest.fixture
def receiver() -> Any:
    with WebhookReceiver(SECRET) as started:
        yield started


async def refusal(url: str, *, allow_private: bool = False) -> str:
    """The message `check_webhook_url` refuses `url` with (fails the test if it accepts)."""
    with pytest.raises(ValidationFailed) as caught:
        await check_webhook_url(url, allow_private=allow_private)
    assert caught.value.status_code == 400
    assert caught.value.details[0]["field"] == "webhook_url"
    return caught.value.details[0]["message"]


class FakeDNS:
    """Stands in for the system resolver on the running loop: answers `host` with the next
    address in `answers` (the last one repeats), and counts the lookups."""

    def __init__(self, host: str, answers: list[str]) -> None:
        self.host, self.answers, self.lookups = host, answers, 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loop = asyncio.get_running_loop()
        real = loop.getaddrinfo

        async def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
            if host != self.host:
                return await real(host, port, *args, **kwargs)
            address = self.answers[min(self.lookups, len(self.answers) - 1)]
            self.lookups += 1
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


# --------------------------------------------------------------------------- targets

REFUSED_ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "shared"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.10", "private"),
    ("198.18.0.1", "private"),
    ("[::1]", "loopback"),
    ("[::]", "unspecified"),
    ("[fc00::1]", "unique-local"),
    ("[fd12:3456::1]", "unique-local"),
    ("[fec0::1]", "unique-local"),
    ("[fe80::1]", "link-local"),
    ("[ff02::1]", "multicast"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
    ("[::ffff:10.0.0.1]", "IPv4-mapped private"),
    ("[::ffff:169.254.169.254]", "IPv4-mapped link-local"),
    ("[2002:7f00:1::]", "IPv6-embedded loopback"),
    ("[64:ff9b::a00:1]", "IPv6-embedded private"),
    ("[2001:db8::1]", "private"),
]


@pytest.mark.parametrize(("host", "reason"), REFUSED_ADDRESSES)
async def test_an_address_outside_the_public_internet_is_refused(host: str, reason: str) -> None:
    message = await refusal(f"https://{host}/hooks")
    assert reason in message


@pytest.mark.parametrize(("host", "reason"), REFUSED_ADDRESSES)
async def test_allow_private_lets_every_range_through(host: str, reason: str) -> None:
    del reason
    await check_webhook_url(f"https://{host}/hooks", allow_private=True)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://8.8.8.8/hooks", "8.8.8.8"),
        ("https://[2606:4700:4700::1111]:8443/", "2606:4700:4700::1111"),
    ],
)
async def test_a_public_address_is_accepted(url: str, address: str) -> None:
    assert await resolve_public(url, allow_private=False) == [address]


async def test_a_name_that_resolves_to_loopback_is_refused() -> None:
    assert "loopback" in await refusal("https://localhost/hooks")


async def test_a_numeric_host_is_judged_by_the_address_it_resolves_to() -> None:
    assert "loopback" in await refusal("https://2130706433/hooks")


async def test_localhost_is_allowed_with_allow_private() -> None:
    addresses = await resolve_public("http://localhost:8080/hooks", allow_private=True)
    assert addresses
    assert set(addresses) <= {"127.0.0.1", "::1"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://8.8.8.8/hooks", "must use https"),
        ("ftp://8.8.8.8/hooks", "must use https"),
        ("https://user:pass@8.8.8.8/hooks", "credentials"),
        ("https://token@8.8.8.8/hooks", "credentials"),
        ("https:///hooks", "host"),
        ("/hooks", "must use https"),
        ("https://8.8.8.8:0/hooks", "port"),
        ("https://8.8.8.8:70000/hooks", "not a valid URL"),
        ("https://8.8.8.8/ho oks", "whitespace"),
        ("https://8.8.8.8/\nhooks", "whitespace"),
        ("https://8.8.8.8/" + "a" * 2100, "2048"),
        ("https://name-that-does-not-exist.invalid/hooks", "resolve"),
    ],
)
async def test_a_malformed_target_is_refused(url: str, expected: str) -> None:
    assert expected in await refusal(url)


async def test_allow_private_allows_http_but_never_credentials() -> None:
    await check_webhook_url("http://127.0.0.1:9/hooks", allow_private=True)
    assert "credentials" in await refusal("http://a:b@127.0.0.1:9/", allow_private=True)
    assert "https or http" in await refusal("ftp://127.0.0.1/", allow_private=True)


async def test_a_url_without_a_configured_secret_is_refused() -> None:
    fields = WebhookFields(webhook_url="https://8.8.8.8/hooks")
    with pytest.raises(ValidationFailed, match="not enabled"):
        await check_webhook_fields(fields, secret_configured=False, allow_private=False)
    await check_webhook_fields(fields, secret_configured=True, allow_private=False)
    await check_webhook_fields(WebhookFields(), secret_configured=False, allow_private=False)


class _VideoRequest(WebhookFields):
    prompt: str


def test_webhook_fields_are_inherited_and_default_to_the_three_final_events() -> None:
    request = _VideoRequest.model_validate({"prompt": "x", "webhook_url": "https://h.example/"})
    assert request.webhook_url == "https://h.example/"
    assert effective_webhook_events(request.webhook_events) == DEFAULT_WEBHOOK_EVENTS
    assert DEFAULT_WEBHOOK_EVENTS == ("succeeded", "failed", "canceled")


def test_chosen_events_come_back_in_canonical_order() -> None:
    request = _VideoRequest.model_validate(
        {
            "prompt": "x",
            "webhook_url": "https://h.example/",
            "webhook_events": ["failed", "running"],
        }
    )
    assert effective_webhook_events(request.webhook_events) == ("running", "failed")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"webhook_url": "https://h.example/", "webhook_events": ["done"]}, "webhook_events"),
        ({"webhook_url": "https://h.example/", "webhook_events": []}, "webhook_events"),
        ({"webhook_url": "https://h.example/", "webhook_events": ["failed", "failed"]}, "once"),
        ({"webhook_events": ["failed"]}, "needs webhook_url"),
        ({"webhook_url": ""}, "webhook_url"),
    ],
)
def test_bad_webhook_fields_are_a_validation_error(fields: dict, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        _VideoRequest.model_validate({"prompt": "x", **fields})


# --------------------------------------------------------------------------- delivery


async def deliver(url: str, **options: Any) -> AttemptResult:
    async with WebhookSender(
        SECRET, allow_private=options.pop("allow_private", True), **options
    ) as sender:
        return await sender.send(url, webhook_id="msg_1", event_type="succeeded", data=JOB)


async def test_a_delivery_is_signed_so_the_standardwebhooks_package_verifies_it(
    receiver: WebhookReceiver,
) -> None:
    result = await deliver(receiver.url("/hooks/mv"))
    assert result.ok, result
    assert result.status == 200
    assert result.error is None
    [delivery] = receiver.deliveries
    assert delivery.verified, delivery.verify_error
    assert delivery.path == "/hooks/mv"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["webhook-id"] == "msg_1"
    assert delivery.headers["webhook-signature"].startswith("v1,")
    assert delivery.payload["type"] == "job.succeeded"
    assert delivery.payload["data"] == JOB
    assert delivery.payload["timestamp"].endswith("Z")
    # The body's timestamp is the signed one.
    signed = int(delivery.headers["webhook-timestamp"])
    assert datetime.fromisoformat(delivery.payload["timestamp"]).timestamp() == signed
    # A receiver's own verification, straight from the package, on the raw bytes.
    assert Webhook(SECRET).verify(delivery.body, delivery.headers) == delivery.payload


async def test_a_receiver_with_another_secret_rejects_the_signature(
    receiver: WebhookReceiver,
) -> None:
    await deliver(receiver.url())
    [delivery] = receiver.deliveries
    with pytest.raises(Exception, match="signature"):
        Webhook(new_webhook_secret()).verify(delivery.body, delivery.headers)


async def test_retries_of_one_event_keep_its_webhook_id(receiver: WebhookReceiver) -> None:
    receiver.fail_next(1, status=503)
    async with WebhookSender(SECRET, allow_private=True) as sender:
        first = await sender.send(receiver.url(), webhook_id="msg_7", event_type="failed", data=JOB)
        second = await sender.send(
            receiver.url(), webhook_id="msg_7", event_type="failed", data=JOB
        )
    assert (first.ok, first.status, second.ok) == (False, 503, True)
    assert [d.headers["webhook-id"] for d in receiver.deliveries] == ["msg_7", "msg_7"]
    assert all(d.verified for d in receiver.deliveries)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_any_2xx_is_a_success(receiver: WebhookReceiver, status: int) -> None:
    if status != 200:
        receiver.fail_next(status=status)
    result = await deliver(receiver.url())
    assert (result.ok, result.status, result.error) == (True, status, None)


@pytest.mark.parametrize("status", [400, 404, 410, 429, 500, 503])
async def test_an_error_status_is_a_failure(receiver: WebhookReceiver, status: int) -> None:
    receiver.fail_next(status=status)
    result = await deliver(receiver.url())
    assert (result.ok, result.status, result.error) == (False, status, f"answered {status}")


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    receiver: WebhookReceiver, status: int
) -> None:
    receiver.redirect_next(status=status)
    result = await deliver(receiver.url())
    assert not result.ok
    assert result.status == status
    assert "redirect" in (result.error or "")
    assert [delivery.path for delivery in receiver.deliveries] == ["/hooks"]
    assert all(delivery.path != REDIRECT_TARGET for delivery in receiver.deliveries)


async def test_a_receiver_that_hangs_past_the_timeout_is_a_failure(
    receiver: WebhookReceiver,
) -> None:
    receiver.hang_next(seconds=5)
    result = await deliver(receiver.url(), timeout_seconds=0.5)
    assert (result.ok, result.status) == (False, None)
    assert result.error == "no answer within 0.5 s"
    assert 0.5 <= result.duration_seconds < 2


async def test_an_unreachable_receiver_is_a_short_error_without_a_traceback() -> None:
    result = await deliver(f"http://127.0.0.1:{free_port()}/hooks")
    assert (result.ok, result.status) == (False, None)
    assert result.error
    assert len(result.error) <= 200
    assert "Traceback" not in result.error


async def test_a_refused_target_is_a_failed_attempt_and_nothing_is_sent(
    receiver: WebhookReceiver,
) -> None:
    result = await deliver(receiver.url(), allow_private=False)
    assert (result.ok, result.status) == (False, None)
    assert "must use https" in (result.error or "")
    assert receiver.deliveries == []


async def test_a_name_rebound_to_loopback_after_submit_is_refused_at_delivery(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns = FakeDNS("hooks.example.test", ["93.184.215.14", "127.0.0.1"])
    dns.install(monkeypatch)
    port = receiver.base_url.rsplit(":", 1)[1]
    url = f"https://hooks.example.test:{port}/hooks"
    await check_webhook_url(url, allow_private=False)
    result = await deliver(url, allow_private=False)
    assert not result.ok
    assert "loopback" in (result.error or "")
    assert receiver.deliveries == []


async def test_the_connection_goes_to_the_checked_address_with_the_original_host(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on 127.0.0.2: any lookup after the check would lead there and fail.
    dns = FakeDNS("hooks.example.test", ["127.0.0.1", "127.0.0.2"])
    dns.install(monkeypatch)
    port = receiver.base_url.rsplit(":", 1)[1]
    result = await deliver(f"http://hooks.example.test:{port}/hooks")
    assert result.ok, result
    assert dns.lookups == 1
    [delivery] = receiver.deliveries
    assert delivery.headers["host"] == f"hooks.example.test:{port}"


async def test_tls_is_checked_against_the_url_host_not_the_address() -> None:
    with WebhookReceiver(SECRET, tls=True) as receiver:
        trust = ssl.create_default_context(cafile=str(receiver.ca_cert_path))
        good = await deliver(receiver.url(host="localhost"), ssl_context=trust)
        assert good.ok, good
        assert receiver.deliveries[0].headers["host"].startswith("localhost:")
        assert receiver.deliveries[0].verified


async def test_a_certificate_for_another_name_fails_even_on_a_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeDNS("other.example.test", ["127.0.0.1"]).install(monkeypatch)
    with WebhookReceiver(SECRET, tls=True) as receiver:
        trust = ssl.create_default_context(cafile=str(receiver.ca_cert_path))
        result = await deliver(receiver.url(host="other.example.test"), ssl_context=trust)
        assert not result.ok
        assert "certificate" in (result.error or "").lower()
        assert receiver.deliveries == []


async def test_the_secret_is_never_logged_or_shown(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.fail_next(status=500)
    async with WebhookSender(SECRET, allow_private=True) as sender:
        results = [
            await sender.send(receiver.url(), webhook_id="m", event_type="failed", data=JOB),
            await sender.send("http://127.0.0.1:1/", webhook_id="m", event_type="failed", data=JOB),
        ]
        shown = repr(sender) + repr(results) + caplog.text
    assert caplog.records
    key = SECRET.removeprefix("whsec_")
    assert key not in shown


# --------------------------------------------------------------------------- receiver process


async def test_the_receiver_runs_as_a_process_and_reports_over_http() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backend.testing.webhook_receiver",
        "--secret",
        SECRET,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        base_url = ready["base_url"]
        async with httpx.AsyncClient(base_url=base_url) as control:
            queued = await control.post("/_receiver/script", json={"action": "fail", "status": 502})
            assert queued.status_code == 200
            first = await deliver(f"{base_url}/hooks")
            second = await deliver(f"{base_url}/hooks")
            deliveries = (await control.get("/_receiver/deliveries")).json()
        assert (first.status, second.status) == (502, 200)
        assert [d["answered"] for d in deliveries] == ["502", "200"]
        assert all(d["verified"] for d in deliveries)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


# --------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 5), (2, 30), (3, 120), (4, 600), (5, 1800), (6, 3600), (7, 7200), (8, 14400), (9, 14400)],
)
def test_the_wait_after_each_attempt_follows_the_schedule(attempt: int, seconds: float) -> None:
    assert retry_delay_seconds(attempt, 5.0) == seconds


def test_the_schedule_scales_with_its_base() -> None:
    assert [retry_delay_seconds(n, 0.5) for n in range(1, 9)] == [
        0.5,
        3.0,
        12.0,
        60.0,
        180.0,
        360.0,
        720.0,
        1440.0,
    ]


def test_nine_attempts_mean_eight_retries() -> None:
    assert [should_retry(n, 9) for n in range(1, 10)] == [True] * 8 + [False]
    assert not should_retry(1, 1)


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_are_counted_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        retry_delay_seconds(attempt, 5.0)
    with pytest.raises(ValueError, match="start at 1"):
        should_retry(attempt, 9)


# --------------------------------------------------------------------------- secret setting


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "must start with"),
        ("whsec_not*base64*at*all", "not base64"),
        ("whsec_c2hvcnQ=", "24 to 64 bytes"),
        ("whsec_" + "QUFB" * 30, "24 to 64 bytes"),
    ],
)
def test_a_malformed_secret_is_refused_without_showing_it(secret: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as caught:
        check_webhook_secret(secret)
    assert secret.removeprefix("whsec_") not in str(caught.value)
    with pytest.raises(ValidationError) as settings_error:
        Settings(_env_file=None, mv_webhook_secret=secret)
    assert "MV_WEBHOOK_SECRET" in str(settings_error.value)
    assert secret.removeprefix("whsec_") not in str(settings_error.value)


def test_a_valid_secret_is_kept_and_scrubbed_from_logs() -> None:
    settings = Settings(_env_file=None, mv_webhook_secret=SECRET)
    assert settings.mv_webhook_secret == SECRET
    assert SECRET.removeprefix("whsec_") in settings.secrets
    defaults = Settings(_env_file=None)
    assert (defaults.mv_webhook_secret, defaults.mv_webhook_allow_private) == ("", False)
    assert (defaults.mv_webhook_max_attempts, defaults.mv_webhook_retry_base_seconds) == (9, 5.0)


def test_a_server_with_a_malformed_secret_does_not_start() -> None:
    bad = "whsec_c2hvcnQtc2VjcmV0"
    finished = subprocess.run(
        [sys.executable, "-m", "backend", "--port", str(free_port())],
        cwd=REPO_ROOT,
        env={**os.environ, "MV_WEBHOOK_SECRET": bad, "MV_MOCK_MODE": "true"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode != 0
    assert "cannot start" in finished.stderr
    assert "MV_WEBHOOK_SECRET" in finished.stderr
    assert "c2hvcnQtc2VjcmV0" not in finished.stderr
    assert "Traceback" not in finished.stderr
