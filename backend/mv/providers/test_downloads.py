"""Output downloads: credentials stay with their host across redirects; bytes land whole.

A small aiohttp server on loopback plays the file service. It answers on 127.0.0.1 and on
localhost, which are different origins to a client: a redirect from one to the other is a
redirect to another host.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from backend.mv.errors import BackendError
from backend.mv.providers.downloads import download
from backend.mv.storage.base import ArtifactWriter
from backend.mv.storage.local import LocalStore

CLIP = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
API_KEY = "secret-key"


def into(path: Path) -> Callable[[], AbstractAsyncContextManager[ArtifactWriter]]:
    """A download target: the file `path`, through the local store."""
    return lambda: LocalStore(path.parent).writer(path.name)


class FileService:
    """Records the key each request carried; serves CLIP, redirects, or fails as told."""

    def __init__(self) -> None:
        self.keys_seen: list[tuple[str, str | None]] = []
        self.raw_paths_seen: list[str] = []
        self.redirect_to: str = ""
        self.failures_left = 0
        self.server = TestServer(self._app(), host="127.0.0.1")

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1beta/files/{name}", self._download)
        app.router.add_get("/media/clip.mp4", self._media)
        app.router.add_get("/loop/{hops}", self._loop)
        return app

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.port}{path}"

    def _record(self, request: web.Request) -> None:
        self.raw_paths_seen.append(request.raw_path)
        self.keys_seen.append(
            (request.host.partition(":")[0], request.headers.get("x-goog-api-key"))
        )

    async def _download(self, request: web.Request) -> web.Response:
        """The Location header goes out exactly as set (aiohttp's HTTPFound re-encodes it)."""
        self._record(request)
        return web.Response(status=302, headers={"Location": self.redirect_to})

    async def _media(self, request: web.Request) -> web.Response:
        self._record(request)
        if self.failures_left:
            self.failures_left -= 1
            return web.Response(status=503, text="busy")
        return web.Response(body=CLIP, content_type="video/mp4")

    async def _loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/loop/{int(request.match_info['hops']) + 1}")


@pytest.fixture
async def service() -> AsyncIterator[FileService]:
    files = FileService()
    await files.server.start_server()
    try:
        yield files
    finally:
        await files.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.mark.parametrize(
    ("media_host", "key_follows"),
    [("localhost", False), ("127.0.0.1", True)],
    ids=["other-host", "same-host"],
)
async def test_api_key_is_sent_only_to_its_own_host(
    tmp_path: Path,
    service: FileService,
    session: aiohttp.ClientSession,
    media_host: str,
    key_follows: bool,
) -> None:
    service.redirect_to = service.url("/media/clip.mp4", host=media_host)
    written = await download(
        session,
        service.url("/v1beta/files/abc:download?alt=media"),
        into(tmp_path / "clip.mp4"),
        backend="gemini",
        headers={"x-goog-api-key": API_KEY},
    )
    assert (tmp_path / "clip.mp4").read_bytes() == CLIP
    assert written.size_bytes == len(CLIP)
    assert service.keys_seen == [
        ("127.0.0.1", API_KEY),
        (media_host, API_KEY if key_follows else None),
    ]


async def test_endless_redirects_are_a_backend_error(
    tmp_path: Path, service: FileService, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(BackendError, match="redirected too many times"):
        await download(session, service.url("/loop/0"), into(tmp_path / "f.mp4"), backend="gemini")
    assert not list(tmp_path.iterdir())


async def test_a_busy_file_service_is_asked_again(
    tmp_path: Path, service: FileService, session: aiohttp.ClientSession
) -> None:
    service.failures_left = 1
    written = await download(
        session,
        service.url("/media/clip.mp4"),
        into(tmp_path / "clip.mp4"),
        backend="replicate",
        max_attempts=2,
    )
    assert written.size_bytes == len(CLIP)
    assert (tmp_path / "clip.mp4").read_bytes() == CLIP
    assert len(service.raw_paths_seen) == 2


async def test_retries_stop_at_the_attempt_budget(
    tmp_path: Path, service: FileService, session: aiohttp.ClientSession
) -> None:
    service.failures_left = 3
    with pytest.raises(BackendError, match=r"HTTP 503") as caught:
        await download(
            session,
            service.url("/media/clip.mp4"),
            into(tmp_path / "clip.mp4"),
            backend="replicate",
            max_attempts=2,
        )
    assert caught.value.retryable
    assert len(service.raw_paths_seen) == 2
    assert not list(tmp_path.iterdir())


async def test_signed_urls_are_sent_exactly_as_written(
    tmp_path: Path, service: FileService, session: aiohttp.ClientSession
) -> None:
    signed = "/media/clip.mp4?sig=a%2Fb%3D%3D&expires=1%7E2"
    service.redirect_to = service.url(signed)
    await download(
        session,
        service.url("/v1beta/files/abc:download?alt=media&key=x%2By"),
        into(tmp_path / "clip.mp4"),
        backend="gemini",
    )
    assert service.raw_paths_seen == ["/v1beta/files/abc:download?alt=media&key=x%2By", signed]


async def test_a_redirect_to_an_invalid_url_is_a_backend_error(
    tmp_path: Path, service: FileService, session: aiohttp.ClientSession
) -> None:
    service.redirect_to = "http://[not-an-address/clip.mp4"
    with pytest.raises(BackendError, match="invalid URL"):
        await download(
            session,
            service.url("/v1beta/files/abc:download"),
            into(tmp_path / "f.mp4"),
            backend="gemini",
        )
    assert not list(tmp_path.iterdir())
