"""What the fake keeps of each request and each file, shared by every provider."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it reached the fake provider."""

    route: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case header names, as received (API keys included)."""
    json: Any
    """The parsed JSON body, or None when the body was empty or not JSON."""


@dataclass(frozen=True)
class GeneratedFile:
    """A media file the fake produced for a successful generation; `url` serves it."""

    url: str
    file_id: str
    content_type: str


@dataclass(frozen=True)
class StoredFile:
    """What `FakeUpstream.media_response` serves for a generated file."""

    content_type: str
    content: bytes | None
    """Image bytes; None for a clip, which is served from the shared clip buffer."""


@dataclass
class UploadedFile:
    """A file a client uploaded (Replicate's files API); `url` is the `urls.get` it was given."""

    file_id: str
    url: str
    name: str
    content_type: str
    content: bytes
    deleted: bool = False
