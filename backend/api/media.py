"""Serving stored media: one FileResponse for every media route, with larger chunks and the
error contract for ranges."""

from pathlib import Path

from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable

from backend.mv import errors
from backend.mv.storage.files import CHUNK_BYTES


class MediaResponse(FileResponse):
    """A stored file with Range, If-Range, ETag and Last-Modified; HEAD sends headers only.

    This is the one range check of every media route. Starlette applies If-Range first (a
    stale one gets the whole file, whatever the Range), then this parser: a malformed Range
    is ignored (a full 200, as RFC 9110 allows), and an unsatisfiable one raises the
    service's 416, which the error handler renders in the JSON shape with the request id
    (Starlette's own answers are plain text). 1 MiB chunks (Starlette's default is 64 KiB)
    keep a large download from costing a thread hop per 64 KiB.
    """

    chunk_size = CHUNK_BYTES

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []
        except RangeNotSatisfiable as exc:
            raise errors.RangeNotSatisfiable(
                f"The range {http_range[:100]!r} is outside the file's {file_size} bytes",
                headers={"Content-Range": f"bytes */{file_size}"},
            ) from exc


def media_response(path: Path, *, media_type: str, etag: str | None) -> MediaResponse:
    """`path` as `media_type`; `etag` (the stored sha256) replaces Starlette's, which is
    made from the file's time and size."""
    headers = {"Cache-Control": "private, max-age=86400"}
    if etag:
        headers["ETag"] = f'"{etag}"'
    return MediaResponse(path, media_type=media_type, headers=headers)
