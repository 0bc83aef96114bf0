"""JSON request bodies parsed by pydantic-core, the large ones off the event loop.

FastAPI parses a JSON body with `json.loads` on the event loop: about 18 ms for a 13 MB body
carrying a reference image (40 ms when the machine is busy), during which no other request
gets an answer, `/health` included. pydantic-core's parser (the one pydantic validates JSON
with) takes about 4.5 ms for the same body, and bodies over `OFF_LOOP_BYTES` are parsed in
the `DECODING` thread pool. It is stricter in one way: a lone surrogate escape (`"\\ud800"`,
which no provider can take) is malformed JSON (400), not a string.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute

from backend.mv.thread_pools import DECODING

OFF_LOOP_BYTES = 1024 * 1024
"""Smaller bodies parse in well under a millisecond: a thread hop would cost more."""


def _parse(body: bytes) -> Any:
    try:
        return pydantic_core.from_json(body)
    except ValueError as exc:
        # FastAPI turns exactly this into its 400 `json_invalid`.
        raise json.JSONDecodeError(str(exc), "", 0) from exc


class JSONBodyRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = (
                await DECODING.run(_parse, body) if len(body) > OFF_LOOP_BYTES else (_parse(body))
            )
        return self._json


class JSONBodyRoute(APIRoute):
    """An `APIRoute` whose handler parses the JSON body as `JSONBodyRequest` does."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def parse_json_with_pydantic_core(request: Request) -> Response:
            return await handler(JSONBodyRequest(request.scope, request.receive))

        return parse_json_with_pydantic_core
