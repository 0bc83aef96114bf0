"""Stored character reference images: where they live and how an id finds one again."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from backend.mv.errors import NotFound
from backend.mv.storage import parse_artifact_id, read_json

REFERENCE_FOLDER = "character_reference"
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


@dataclass(frozen=True)
class StoredReference:
    image_id: str
    path: Path
    content_type: str
    sidecar: dict[str, Any]


def reference_folder(output_root: Path) -> Path:
    return output_root / REFERENCE_FOLDER


async def find_reference(raw_id: str, output_root: Path) -> StoredReference:
    """The stored image for an id; a malformed id never touches the filesystem (404)."""
    image_id = parse_artifact_id(raw_id)
    if image_id is None:
        raise NotFound(f"No character reference with id {raw_id[:64]!r}")
    folder = reference_folder(output_root)
    sidecar = await read_json(folder / f"{image_id}.json")
    if not isinstance(sidecar, dict):
        raise NotFound(f"No character reference with id {image_id}")
    path = folder / Path(str(sidecar.get("file_name", ""))).name
    if not await anyio.Path(path).is_file():
        raise NotFound(f"The image for character reference {image_id} is gone")
    content_type = CONTENT_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")
    return StoredReference(image_id, path, content_type, sidecar)
