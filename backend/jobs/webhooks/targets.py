"""Where a webhook may be sent: the URL rules, the address ranges refused, the events.

A target is checked twice: at submit (`check_webhook_url`, a 400 naming `webhook_url`) and
again at every delivery (`resolve_public`), because a name that resolved to a public
address at submit may resolve to 127.0.0.1 an hour later (DNS rebinding). The sender then
connects only to the addresses `resolve_public` returned, never resolving the name again.

The URL is parsed with yarl, the parser aiohttp itself uses, so the host checked here is
the host the request goes to.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import Literal, get_args

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from yarl import URL

from backend.mv.errors import ValidationFailed

WebhookEvent = Literal["running", "progress", "succeeded", "failed", "canceled"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = get_args(WebhookEvent)
DEFAULT_WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("succeeded", "failed", "canceled")
MAX_WEBHOOK_URL_CHARS = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0
"""How long a submit waits for DNS before the URL is refused (a delivery has its own
deadline for the whole attempt)."""

FIELD = "webhook_url"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class WebhookFields(BaseModel):
    """The two webhook fields any job request accepts; request models inherit them.

    Only the shape is checked here: whether the URL may be used (scheme, credentials, the
    addresses it resolves to) depends on settings and DNS, so the route calls
    `check_webhook_fields` before it creates the job.
    """

    webhook_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_WEBHOOK_URL_CHARS,
        description=(
            "Where to POST job events (Standard Webhooks signatures). `https://` only, no "
            "credentials in the URL, never a loopback, private, link-local or multicast "
            "address; redirects are not followed. Needs `MV_WEBHOOK_SECRET` on the server."
        ),
        examples=["https://example.com/hooks/mv"],
    )
    webhook_events: list[WebhookEvent] | None = Field(
        default=None,
        min_length=1,
        max_length=len(WEBHOOK_EVENTS),
        description=(
            "Which job events to deliver; default `succeeded`, `failed`, `canceled`. "
            "Needs `webhook_url`."
        ),
        examples=[["running", "succeeded", "failed"]],
    )

    @field_validator("webhook_events")
    @classmethod
    def _events_need_a_url(
        cls, events: list[WebhookEvent] | None, info: ValidationInfo
    ) -> list[WebhookEvent] | None:
        if events is None:
            return None
        if info.data.get("webhook_url") is None:
            raise ValueError("webhook_events needs webhook_url")
        if len(set(events)) != len(events):
            raise ValueError("each event may be listed once")
        return events


def effective_webhook_events(events: Sequence[WebhookEvent] | None) -> tuple[WebhookEvent, ...]:
    """The events a job delivers, in their canonical order: `events`, or the default three
    when the request named none."""
    chosen = DEFAULT_WEBHOOK_EVENTS if events is None else frozenset(events)
    return tuple(event for event in WEBHOOK_EVENTS if event in chosen)


async def check_webhook_fields(
    fields: WebhookFields, *, secret_configured: bool, allow_private: bool
) -> None:
    """Submit-time check of a request's webhook fields: a 400 `ValidationFailed` naming
    `webhook_url` when the server has no webhook secret or the target is refused."""
    if fields.webhook_url is None:
        return
    if not secret_configured:
        raise ValidationFailed.about(FIELD, "webhooks are not enabled on this server")
    await check_webhook_url(fields.webhook_url, allow_private=allow_private)


async def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """Raise `ValidationFailed` (400, field `webhook_url`) unless `url` may receive webhooks.

    Refused: a scheme other than https (http too with `allow_private`), credentials, no
    host, a port outside 1-65535, whitespace or control characters, a host that does not
    resolve, and, unless `allow_private`, any resolved address that is not public.
    """
    await resolve_public(url, allow_private=allow_private)


async def resolve_public(url: str, *, allow_private: bool) -> list[str]:
    """The addresses a delivery to `url` may connect to, every one of them checked.

    Raises `ValidationFailed` like `check_webhook_url`. When the name resolves to several
    addresses and any one is refused, the whole target is refused (an attacker's record set
    may mix a public address with an internal one).
    """
    target = parse_webhook_url(url, allow_private=allow_private)
    host = target.raw_host
    assert host is not None
    assert target.port is not None
    addresses = await _resolve(host.rstrip("."), target.port)
    if not allow_private:
        for address in addresses:
            reason = refusal_reason(address)
            if reason is not None:
                raise ValidationFailed.about(
                    FIELD, f"the host resolves to a {reason} address ({address})"
                )
    return [str(address) for address in addresses]


def parse_webhook_url(url: str, *, allow_private: bool) -> URL:
    """The URL, parsed, if its form is acceptable; no DNS. Raises `ValidationFailed`."""
    if len(url) > MAX_WEBHOOK_URL_CHARS:
        raise _refused(f"must be at most {MAX_WEBHOOK_URL_CHARS} characters")
    if any(character.isspace() or not character.isprintable() for character in url):
        raise _refused("must not contain whitespace or control characters")
    try:
        target = URL(url)
    except ValueError as exc:
        # yarl's messages are short and name the part ("Port out of range 0-65535").
        raise _refused(f"is not a valid URL ({exc})") from exc
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if target.scheme not in allowed_schemes:
        raise _refused("must use https" if not allow_private else "must use https or http")
    if target.user is not None or target.password is not None:
        raise _refused("must not contain credentials")
    if not target.absolute or not target.raw_host:
        raise _refused("must name a host")
    if target.explicit_port is not None and not 1 <= target.explicit_port <= 65535:
        raise _refused("the port must be between 1 and 65535")
    return target


def refusal_reason(address: IPAddress) -> str | None:
    """Why a delivery may not connect to `address` ("loopback", "private", ...), or None
    for a public address. IPv6 forms that carry an IPv4 address (mapped, 6to4, Teredo,
    NAT64) are judged by the IPv4 address inside as well."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            inner = refusal_reason(mapped)
            return None if inner is None else f"IPv4-mapped {inner}"
        for embedded in _embedded_ipv4(address):
            inner = refusal_reason(embedded)
            if inner is not None:
                return f"IPv6-embedded {inner}"
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address in _UNIQUE_LOCAL or address in _SITE_LOCAL, "unique-local"),
        (address in _SHARED_ADDRESS_SPACE, "shared (carrier-grade NAT)"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "non-public"),
    )
    return next((reason for refused, reason in checks if refused), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded = []
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if any(address in prefix for prefix in _NAT64):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def _parse_answer(address: str) -> IPAddress:
    # A link-local IPv6 answer may carry a zone ("fe80::1%eth0"); the range check ignores it.
    return ipaddress.ip_address(address.split("%", 1)[0])


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """`host`'s addresses, in the resolver's order, without duplicates. A literal address is
    its own answer; anything else (numeric forms like `2130706433` included) goes to the
    system resolver, so the check sees what a connection would reach."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            answers = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
    except TimeoutError as exc:
        raise _refused(f"the host did not resolve within {RESOLVE_TIMEOUT_SECONDS:g} s") from exc
    except (OSError, UnicodeError) as exc:
        raise _refused("the host does not resolve") from exc
    addresses: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in answers:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = _parse_answer(str(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _refused("the host does not resolve")
    return addresses


def _refused(message: str) -> ValidationFailed:
    return ValidationFailed.about(FIELD, message)
