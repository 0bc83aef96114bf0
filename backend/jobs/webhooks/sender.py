"""One webhook delivery attempt: check the target again, sign, POST, judge the answer.

The outbox owns retries and bookkeeping; `WebhookSender.send` never raises for anything a
receiver or the network does, it returns an `AttemptResult`. The connection goes only to an
address `resolve_public` has just checked: the session's resolver answers from that list
(set per delivery in a context variable) and never asks DNS itself, while the URL keeps the
original host, so the Host header, TLS SNI and the certificate check are for that name.
"""

import asyncio
import json
import logging
import socket
import ssl
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from backend.jobs.webhooks.signing import WebhookSigner
from backend.jobs.webhooks.targets import WEBHOOK_EVENTS, resolve_public
from backend.mv.errors import ValidationFailed

logger = logging.getLogger(__name__)

DELIVERY_TIMEOUT_SECONDS = 10.0
"""DESIGN.md: success is a 2xx within 10 s, DNS and connecting included."""
MAX_ERROR_CHARS = 200
USER_AGENT = "mv-backend-webhooks"

_checked_addresses: ContextVar[tuple[str, tuple[str, ...]] | None] = ContextVar(
    "webhook_checked_addresses", default=None
)
"""(host, addresses) of the delivery running in this task."""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt came to. `status` is the receiver's HTTP status when it answered;
    `error` is a short reason (no traceback, no secret, no URL) when `ok` is false."""

    ok: bool
    status: int | None
    error: str | None
    duration_seconds: float


class _CheckedAddressResolver(AbstractResolver):
    """Answers a connection's lookup with the addresses checked for this delivery only."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        checked = _checked_addresses.get()
        if checked is None or checked[0] != host.rstrip("."):
            raise OSError(f"no checked address for {host}")
        results: list[ResolveResult] = []
        for address in checked[1]:
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family not in (socket.AF_UNSPEC, address_family):
                continue
            results.append(
                {
                    "hostname": host,
                    "host": address,
                    "port": port,
                    "family": address_family,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                }
            )
        if not results:
            raise OSError(f"no checked address for {host} in the family asked for")
        return results

    async def close(self) -> None:
        return None


class WebhookSender:
    """Delivers signed job events; one aiohttp session per sender, closed by `aclose()`.

    `allow_private` is `MV_WEBHOOK_ALLOW_PRIVATE`. `ssl_context` replaces the system trust
    store (tests trust their own CA with it). Environment proxies are ignored on purpose: a
    proxy would connect to the name itself, past the address check.
    """

    def __init__(
        self,
        secret: str,
        *,
        allow_private: bool,
        timeout_seconds: float = DELIVERY_TIMEOUT_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._signer = WebhookSigner(secret)
        self._allow_private = allow_private
        self._timeout_seconds = timeout_seconds
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"WebhookSender(allow_private={self._allow_private}, secret=[redacted])"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, url: str, *, webhook_id: str, event_type: str, data: dict[str, Any]
    ) -> AttemptResult:
        """One attempt to deliver `event_type` (`succeeded`, ...) with `data` (the job JSON)
        to `url`. `webhook_id` is the event's id, the same on every retry; the timestamp and
        signature are fresh on each attempt."""
        if event_type not in WEBHOOK_EVENTS:
            raise ValueError(f"unknown webhook event {event_type!r}")
        started = time.monotonic()
        now = datetime.now(UTC).replace(microsecond=0)
        body = json.dumps(
            {
                "type": f"job.{event_type}",
                "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data": data,
            },
            separators=(",", ":"),
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **self._signer.headers(webhook_id=webhook_id, timestamp=now, body=body),
        }
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self._timeout_seconds):
                status = await self._post(url, headers, body.encode())
        except ValidationFailed as exc:
            error = f"target refused: {exc.details[0]['message']}"
        except TimeoutError:
            error = f"no answer within {self._timeout_seconds:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            error = _short(exc)
        if status is not None and not 200 <= status < 300:
            error = (
                f"answered {status} (redirects are not followed)"
                if 300 <= status < 400
                else f"answered {status}"
            )
        result = AttemptResult(
            ok=error is None,
            status=status,
            error=error,
            duration_seconds=time.monotonic() - started,
        )
        logger.info(
            "webhook %s %s to %s: %s in %.2f s",
            webhook_id,
            event_type,
            _host_of(url),
            "delivered" if result.ok else result.error,
            result.duration_seconds,
        )
        return result

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        addresses = await resolve_public(url, allow_private=self._allow_private)
        target = URL(url)
        host = target.raw_host
        assert host is not None
        token = _checked_addresses.set((host.rstrip("."), tuple(addresses)))
        try:
            async with self._get_session().post(
                target, data=body, headers=headers, allow_redirects=False
            ) as response:
                return response.status
        finally:
            _checked_addresses.reset(token)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=_CheckedAddressResolver(),
                # Every new connection asks the resolver, which answers from this
                # delivery's checked list; a cache would answer from an older one.
                use_dns_cache=False,
                ssl=self._ssl_context if self._ssl_context is not None else True,
                limit=100,
                limit_per_host=10,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _host_of(url: str) -> str:
    """The host alone for logs: a receiver's path or query may hold its own token."""
    try:
        return URL(url).host or "?"
    except ValueError:
        return "?"
