"""What a fake provider declares to FakeUpstream, and what every one of its requests goes through.

A provider is one module with a `Provider` subclass: its routes and their names, the faults
each route accepts, its auth check and its error bodies. `server.PROVIDERS` lists them.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from backend.testing.fake_upstream.faults import DropConnection, Fault, HttpError, abort_connection
from backend.testing.fake_upstream.records import RecordedRequest

if TYPE_CHECKING:
    # Only for annotations: server imports every provider module to build the app.
    from backend.testing.fake_upstream.server import FakeUpstream


class Interrupt(Exception):
    """Raised inside a handler to answer with `response` at once (errors, auth, faults)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class Provider(ABC):
    """One provider's wire protocol, served by FakeUpstream beside the others.

    Handlers keep their own jobs on the instance and use `upstream` for what all providers
    share: the request log, the injected faults, the latency knob and the generated files.
    """

    faults_by_route: ClassVar[Mapping[str, tuple[type, ...]]]
    """Each name in the provider's Route literal, with the faults that route can inject."""
    download_routes: ClassVar[frozenset[str]]
    """The routes serving media, the only ones where DropConnection(after_bytes=...) applies."""

    def __init__(self, upstream: "FakeUpstream") -> None:
        self.upstream = upstream

    @abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The Starlette routes of the provider's API, bound to this instance's handlers."""

    @abstractmethod
    def check_auth(self, request: Request, route: str) -> None:
        """Raise Interrupt with the provider's refusal if `request` lacks credentials."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the provider's jobs (FakeUpstream.reset)."""

    def error_response(
        self, body: Any, status: int, headers: Mapping[str, str] | None = None
    ) -> Response:
        """A JSON error as the provider labels it; HttpError faults with a JSON body use it."""
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    async def enter(self, request: Request, route: str) -> tuple[RecordedRequest, Fault | None]:
        """Record, authenticate, and apply transport-level faults; return what is left."""
        record = await self.upstream.record(request, route)
        self.check_auth(request, route)
        fault = self.upstream.next_fault(route)
        if isinstance(fault, HttpError):
            headers = dict(fault.headers)
            if fault.body is None or isinstance(fault.body, bytes):
                raw = Response(fault.body, status_code=fault.status, headers=headers)
                raise Interrupt(raw)
            raise Interrupt(self.error_response(fault.body, fault.status, headers))
        if isinstance(fault, DropConnection) and fault.after_bytes is None:
            await abort_connection(request.receive)
            raise Interrupt(Response(status_code=500))  # never reaches the closed socket
        return record, fault
