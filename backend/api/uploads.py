"""One file field of a `multipart/form-data` request body, streamed as it arrives.

Starlette's own form parsing spools the whole body to a temporary file before the route
runs, outside the store and past any limit of ours. This parser (python-multipart's
streaming `MultipartParser`) hands on the named part's bytes piece by piece while the body
is still arriving, so the domain writes them straight into the store's staging and stops
at its size limit.
"""

from collections.abc import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from backend.mv.errors import ValidationFailed


class _FilePart:
    """Parser callbacks collecting the data of the part named `field`."""

    def __init__(self, field: str) -> None:
        self.field = field.encode()
        self.header_name = b""
        self.headers: dict[bytes, bytes] = {}
        self.inside = False
        self.found = False
        self.ended = False
        self.pieces: list[bytes] = []

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self.headers, self.header_name = {}, b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name = data[start:end].lower()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.headers[self.header_name] = self.headers.get(self.header_name, b"") + data[start:end]

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.inside = not self.found and options.get(b"name") == self.field
        self.found = self.found or self.inside

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.inside:
            self.pieces.append(bytes(data[start:end]))

    def _end(self) -> None:
        if self.inside:
            self.inside, self.ended = False, True


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed.about("file", message)


async def file_field(request: Request, field: str) -> AsyncIterator[bytes]:
    """The bytes of the part named `field`, as they arrive; 400 (`VALIDATION_ERROR`) when
    the body is not multipart, is malformed, or has no such part. Reading stops at the end
    of that part."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise _refuse(f"send multipart/form-data with the file in a part named {field!r}")
    part = _FilePart(field)
    parser = MultipartParser(boundary, part.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            pieces, part.pieces = part.pieces, []
            for piece in pieces:
                yield piece
            if part.ended:
                return
        parser.finalize()
    except MultipartParseError as exc:
        raise _refuse(f"the multipart body is malformed ({exc})") from exc
    if not part.ended:
        raise _refuse(f"the body has no complete part named {field!r}")
