"""Standard Webhooks signatures, made with the `standardwebhooks` package so a receiver's
own copy of it (or any other implementation of the spec) verifies them.

A secret is `whsec_` followed by the base64 of 24 to 64 random bytes (the spec's range).
The package itself accepts almost any string (it decodes base64 leniently), so
`check_webhook_secret` is stricter: a typo in `MV_WEBHOOK_SECRET` stops startup instead of
signing with a key no receiver has.
"""

import base64
import binascii
import secrets
from datetime import UTC, datetime
from math import floor

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def check_webhook_secret(secret: str) -> None:
    """Raise `ValueError` unless `secret` is a well-formed Standard Webhooks secret.

    The message never contains the secret or any part of it.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret must start with {SECRET_PREFIX!r}")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError(
            f"a webhook secret is {SECRET_PREFIX!r} followed by base64; this one is not base64"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret's key must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes "
            f"(this one decodes to {len(key)})"
        )


def new_webhook_secret() -> str:
    """A fresh secret of 32 random bytes, in the `whsec_...` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class WebhookSigner:
    """Signs deliveries with one secret; holds the decoded key, never logs it."""

    def __init__(self, secret: str) -> None:
        check_webhook_secret(secret)
        self._webhook = Webhook(secret)

    def __repr__(self) -> str:
        return "WebhookSigner(secret=[redacted])"

    def headers(self, *, webhook_id: str, timestamp: datetime, body: str) -> dict[str, str]:
        """The three Standard Webhooks headers for `body` (the exact text sent).

        `timestamp` must be timezone-aware; the signature covers it to the second.
        """
        if timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        # The package reads the datetime's wall clock as UTC: hand it UTC.
        utc = timestamp.astimezone(UTC)
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(floor(utc.timestamp())),
            "webhook-signature": self._webhook.sign(msg_id=webhook_id, timestamp=utc, data=body),
        }
