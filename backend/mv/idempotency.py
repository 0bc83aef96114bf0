"""`Idempotency-Key`: what a key and a request body are reduced to before they are stored.

The key maps `(caller, endpoint, key)` to one job in the job store (`backend.jobs.records`);
only its hash is kept. The request's fingerprint tells a repeat (same body: the same job)
from a reuse with another body (409).
"""

import hashlib
import json
from typing import Any

MAX_KEY_LENGTH = 255


def request_fingerprint(body: dict[str, Any]) -> str:
    """A stable hash of a request body: same fields and values, same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
