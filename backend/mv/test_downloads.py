"""Output downloads: credentials stay with their host across redirects; bytes land whole."""

from pathlib import Path

import httpx
import pytest

from backend.mv.downloads import download_to_file
from backend.mv.errors import BackendError

CLIP = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64


def redirecting_transport(seen: list[httpx.Request], location: str) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith(":download"):
            return httpx.Response(302, headers={"location": location})
        return httpx.Response(200, content=CLIP)

    return httpx.MockTransport(answer)


@pytest.mark.parametrize(
    ("location", "key_follows"),
    [
        ("https://storage.example/clip.mp4", False),
        ("/v1beta/files/abc/media", True),
    ],
)
async def test_api_key_is_sent_only_to_its_own_host(
    tmp_path: Path, location: str, key_follows: bool
) -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=redirecting_transport(seen, location)) as client:
        written = await download_to_file(
            client,
            "https://api.example/v1beta/files/abc:download?alt=media",
            tmp_path / "clip.mp4",
            backend="gemini",
            headers={"x-goog-api-key": "secret-key"},
        )
    assert (tmp_path / "clip.mp4").read_bytes() == CLIP
    assert written.size_bytes == len(CLIP)
    assert seen[0].headers["x-goog-api-key"] == "secret-key"
    assert ("x-goog-api-key" in seen[1].headers) is key_follows


async def test_endless_redirects_are_a_backend_error(tmp_path: Path) -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(302, headers={"location": str(request.url) + "x"})
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(BackendError, match="redirected too many times"):
            await download_to_file(
                client, "https://api.example/f:download", tmp_path / "f.mp4", backend="gemini"
            )
    assert not list(tmp_path.iterdir())
