"""Serving stored media: FileResponse with larger chunks and the error contract for ranges."""

from pathlib import Path

from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable

from backend.mv import errors
from backend.mv.storage.files import CHUNK_BYTES


class ClipResponse(FileResponse):
    """`video/mp4` with Range, ETag and Last-Modified; HEAD sends headers only.

    1 MiB chunks (Starlette's default is 64 KiB) keep a large download from costing a thread
    hop per 64 KiB. A malformed Range header is ignored (a full 200, as RFC 9110 says).
    """

    chunk_size = CHUNK_BYTES

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []


def check_range(range_header: str | None, file_size: int) -> None:
    """Refuse an unsatisfiable Range in the documented error shape (416), before streaming."""
    if range_header is None:
        return
    try:
        ClipResponse._parse_range_header(range_header, file_size)
    except RangeNotSatisfiable as exc:
        raise errors.RangeNotSatisfiable(
            f"The range {range_header[:100]!r} is outside the file's {file_size} bytes",
            headers={"Content-Range": f"bytes */{file_size}"},
        ) from exc


def clip_response(path: Path, *, etag: str | None) -> ClipResponse:
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=86400"}
    if etag:
        headers["ETag"] = f'"{etag}"'
    return ClipResponse(path, media_type="video/mp4", headers=headers)
