"""How artifacts are named and dated: fresh UUIDs, parsed before any key is built from one."""

import uuid
from datetime import UTC, datetime


def utc_now_iso() -> str:
    """Timestamps in responses and sidecars: UTC, second precision, `Z` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_artifact_id(raw_id: str) -> str | None:
    """The canonical form of a client-supplied id, or None when it is not a UUID.

    Only the canonical form is accepted so that one artifact has exactly one name.
    """
    try:
        parsed = uuid.UUID(raw_id)
    except ValueError:
        return None
    return str(parsed) if str(parsed) == raw_id.lower() else None


def new_artifact_id() -> str:
    return str(uuid.uuid4())
