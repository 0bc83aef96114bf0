"""Stored character reference images: where they live and how an id finds one again."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from backend.mv.errors import NotFound
from backend.mv.storage import find_sidecar

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
    folder = reference_folder(output_root)
    image_id, sidecar = await find_sidecar(folder, raw_id, "character reference")
    path = folder / Path(str(sidecar.get("file_name", ""))).name
    if not await anyio.Path(path).is_file():
        raise NotFound(f"The image for character reference {image_id} is gone")
    content_type = CONTENT_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")
    return StoredReference(image_id, path, content_type, sidecar)
