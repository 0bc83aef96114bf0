"""The edges of the HTTP contract, against a real server process over real sockets: Range and
If-Range on every media route, refused CORS preflights, client request ids, trailing slashes,
and corrupt documents in the store. Each answer is either the documented success or an error
in the one JSON shape with `request_id` equal to `X-Request-ID`."""

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from backend.testing.contract import assert_error_shape
from backend.testing.server_process import mock_server_env, running_server

ALLOWED_ORIGIN = "https://app.example"
FRESH_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
CONTENT_MARKER = "corrupt-content-marker"
"""Written inside every corrupt document, so a test can tell that none of it was logged."""
CORRUPT_DOCUMENTS = {
    "truncated": b'{"video_id": "' + CONTENT_MARKER.encode(),
    "not-utf8": b"\xff\xfe" + CONTENT_MARKER.encode(),
    "a-list": json.dumps([CONTENT_MARKER]).encode(),
    "a-string": json.dumps(CONTENT_MARKER).encode(),
}


@dataclass(frozen=True)
class Server:
    base_url: str
    outputs: Path
    log: Path
    video_id: str
    image_id: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One mock-mode server for the module, in debug mode (so requests log lines), CORS
    limited to one origin, with one stored clip and one stored character reference."""
    root = tmp_path_factory.mktemp("http-edges")
    outputs = root / "outputs"
    env = mock_server_env(
        outputs, MV_MOCK_DELAY_SECONDS="0", MV_CORS_ORIGINS=ALLOWED_ORIGIN, MV_DEBUG_MODE="true"
    )
    log = root / "server.log"
    with running_server(env, log) as (base_url, _), httpx.Client(base_url=base_url) as client:
        clip = client.post("/api/mv/generate_video", json={"prompt": "robot", "duration": 4})
        image = client.post(
            "/api/mv/generate_character_reference", json={"character_description": "robot"}
        )
        assert clip.status_code == image.status_code == 200, (clip.text, image.text)
        yield Server(base_url, outputs, log, clip.json()["video_id"], image.json()["image_id"])


def media_url(server: Server, route: str) -> str:
    if route == "get_video":
        return f"/api/mv/get_video/{server.video_id}"
    return f"/api/mv/get_character_reference/{server.image_id}"


MEDIA_ROUTES = ["get_video", "get_character_reference"]


# ---- Range and If-Range on every media route


@pytest.mark.parametrize(
    ("method", "route"),
    [("GET", "get_video"), ("HEAD", "get_video"), ("GET", "get_character_reference")],
)
def test_an_unsatisfiable_range_is_a_416_in_the_error_shape(
    server: Server, route: str, method: str
) -> None:
    with server.client() as client:
        size = len(client.get(media_url(server, route)).content)
        response = client.request(
            method, media_url(server, route), headers={"Range": "bytes=999999999-"}
        )
        if method == "HEAD":
            assert response.status_code == 416
            assert response.headers["content-type"] == "application/json"
            response = client.get(media_url(server, route), headers={"Range": "bytes=999999999-"})
    assert_error_shape(response, 416, "RANGE_NOT_SATISFIABLE")
    assert response.headers["content-range"] == f"bytes */{size}"


@pytest.mark.parametrize("route", MEDIA_ROUTES)
@pytest.mark.parametrize("range_header", ["bytes=abc", "bytes=5-2", "items=0-1", "bytes"])
def test_a_malformed_range_is_ignored_and_the_whole_file_served(
    server: Server, route: str, range_header: str
) -> None:
    with server.client() as client:
        whole = client.get(media_url(server, route)).content
        response = client.get(media_url(server, route), headers={"Range": range_header})
    assert response.status_code == 200, response.text
    assert response.content == whole


@pytest.mark.parametrize("route", MEDIA_ROUTES)
@pytest.mark.parametrize(
    "if_range", ['"stale-etag"', "Wed, 21 Oct 2015 07:28:00 GMT"], ids=["etag", "date"]
)
@pytest.mark.parametrize("range_header", ["bytes=999999999-", "bytes=0-9"])
def test_a_stale_if_range_gives_the_whole_file(
    server: Server, route: str, if_range: str, range_header: str
) -> None:
    with server.client() as client:
        whole = client.get(media_url(server, route)).content
        response = client.get(
            media_url(server, route), headers={"Range": range_header, "If-Range": if_range}
        )
    assert response.status_code == 200, response.text
    assert response.content == whole


@pytest.mark.parametrize("route", MEDIA_ROUTES)
def test_a_current_if_range_gives_the_range(server: Server, route: str) -> None:
    with server.client() as client:
        whole = client.get(media_url(server, route))
        response = client.get(
            media_url(server, route),
            headers={"Range": "bytes=0-9", "If-Range": whole.headers["etag"]},
        )
    assert response.status_code == 206
    assert response.content == whole.content[:10]


# ---- CORS preflights


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Origin": "https://evil.example"}, "origin"),
        (
            {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Private-Network": "true"},
            "private-network",
        ),
    ],
    ids=["origin", "private-network"],
)
def test_a_refused_cors_preflight_is_answered_in_the_error_shape(
    server: Server, headers: dict[str, str], refused: str
) -> None:
    with server.client() as client:
        response = client.options(
            "/api/mv/generate_video", headers={**headers, "Access-Control-Request-Method": "POST"}
        )
    body = assert_error_shape(response, 400, "VALIDATION_ERROR")
    assert refused in body["message"]


def test_an_accepted_cors_preflight_still_passes(server: Server) -> None:
    with server.client() as client:
        response = client.options(
            "/api/mv/generate_video",
            headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"},
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


# ---- X-Request-ID


@pytest.mark.parametrize(
    "forged",
    [
        b"abc level=ERROR request_id=admin",
        b"spaces are not allowed",
        b'quoted"id',
        b"x" * 65,
        "caf\u00e9".encode(),
        b"semi;colon",
    ],
)
def test_a_request_id_that_could_forge_log_fields_is_replaced(
    server: Server, forged: bytes
) -> None:
    with server.client() as client:
        response = client.post(
            "/api/mv/create_scenes",
            json={"idea": "robots", "character_description": "robot"},
            headers={"X-Request-ID": forged},
        )
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    assert FRESH_REQUEST_ID.fullmatch(request_id)
    log = server.log.read_text("latin-1")
    assert f"request_id={request_id} " in log
    assert forged.decode("latin-1") not in log


@pytest.mark.parametrize("request_id", ["trace-42", "A.b_c-9", "x" * 64, "0"])
def test_a_well_formed_request_id_is_echoed(server: Server, request_id: str) -> None:
    with server.client() as client:
        response = client.get("/api/mv/get_video/not-a-uuid", headers={"X-Request-ID": request_id})
    assert assert_error_shape(response, 404, "NOT_FOUND")["request_id"] == request_id


# ---- trailing slashes


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health/"),
        ("GET", "/docs/"),
        ("POST", "/api/mv/generate_video/"),
        ("GET", f"/api/mv/get_video/{uuid.uuid4()}/info/"),
    ],
)
def test_a_trailing_slash_is_a_404_that_names_no_host(
    server: Server, method: str, path: str
) -> None:
    with server.client() as client:
        response = client.request(
            method, path, headers={"Host": "evil.example"}, json={}, follow_redirects=False
        )
    assert_error_shape(response, 404, "NOT_FOUND")
    assert "location" not in response.headers


# ---- corrupt documents in the store


def store_clip_with_sidecar(server: Server, sidecar: bytes) -> str:
    """A real clip under a new id, beside a sidecar holding `sidecar`."""
    video_id = str(uuid.uuid4())
    videos = server.outputs / "videos"
    shutil.copyfile(videos / f"{server.video_id}.mp4", videos / f"{video_id}.mp4")
    (videos / f"{video_id}.json").write_bytes(sidecar)
    return video_id


def assert_logged_without_content(server: Server, key: str) -> None:
    log = server.log.read_text("latin-1")
    [line] = [line for line in log.splitlines() if key in line]
    assert " WARNING " in line
    assert CONTENT_MARKER not in log


@pytest.mark.parametrize("document", CORRUPT_DOCUMENTS.values(), ids=CORRUPT_DOCUMENTS)
@pytest.mark.parametrize("suffix", ["", "/info"])
def test_a_corrupt_video_sidecar_is_a_404_and_a_warning(
    server: Server, document: bytes, suffix: str
) -> None:
    video_id = store_clip_with_sidecar(server, document)
    with server.client() as client:
        response = client.get(f"/api/mv/get_video/{video_id}{suffix}")
    assert_error_shape(response, 404, "NOT_FOUND")
    assert_logged_without_content(server, f"videos/{video_id}.json")


@pytest.mark.parametrize("document", CORRUPT_DOCUMENTS.values(), ids=CORRUPT_DOCUMENTS)
def test_a_corrupt_image_sidecar_is_a_404_wherever_the_image_is_used(
    server: Server, document: bytes
) -> None:
    image_id = str(uuid.uuid4())
    (server.outputs / "character_reference" / f"{image_id}.json").write_bytes(document)
    with server.client() as client:
        served = client.get(f"/api/mv/get_character_reference/{image_id}")
        used = client.post(
            "/api/mv/generate_video", json={"prompt": "robot", "reference_image_id": image_id}
        )
    assert_error_shape(served, 404, "NOT_FOUND")
    assert_error_shape(used, 404, "NOT_FOUND")
    log = server.log.read_text("latin-1")
    assert log.count(f"character_reference/{image_id}.json") == 2
    assert CONTENT_MARKER not in log
