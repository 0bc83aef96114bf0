"""`/docs` and `/redoc` as a browser on a machine without internet sees them.

The real server (mock mode, API keys required) is opened in headless Chromium that can reach
only 127.0.0.1: every other request goes to a proxy that refuses connections, and host names
other than 127.0.0.1 do not resolve for anything that would go around the proxy. A page that
still loaded its JavaScript or CSS from a CDN would stay blank here, so the tests assert on
the DOM after the scripts ran, and on Chromium's own network log that the page needed nothing
from any other origin.
"""

import json
import shutil
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from backend.testing.server_process import running_server

CHROMIUM = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Chromium to open /docs and /redoc, and none of chromium, chromium-browser, "
    "google-chrome is on PATH: apt-get install chromium",
)

API_KEY = "docs-test-key"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
BROWSER_TIMEOUT_SECONDS = 60
RENDER_BUDGET_MS = 10_000
"""Virtual time the page gets to run its scripts; it stands still while a fetch is pending,
so a slow machine gets the same rendering, only later."""
REDOC_FOOTER_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""The "API docs by Redocly" logo, hard-coded in ReDoc's bundle with no option to turn it off.
Offline the request fails and ReDoc drops the image, so the page shows no broken image."""
NOT_FROM_A_PAGE = "not an origin"
"""How Chromium's network log names the initiator of a request no web page made: the
navigation itself and the browser's own background traffic."""


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {name: value or "" for name, value in attrs}))


def elements(html: str) -> list[Element]:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.elements


@dataclass
class LoadedPage:
    dom: str
    """The document after its scripts ran, as Chromium serialises it."""
    page_requests: list[str]
    """Every URL a web page asked for (scripts, styles, fetches, the favicon)."""


@pytest.fixture(scope="module")
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening, so nothing else can
    take it while the browser uses it as its proxy."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server in mock mode with API keys required, as when it listens beyond
    localhost: the docs and their assets must load without a key."""
    work = tmp_path_factory.mktemp("docs-offline")
    env = {
        "MV_MOCK_MODE": "true",
        "MV_OUTPUT_DIR": str(work / "outputs"),
        "MV_API_KEYS": API_KEY,
    }
    with running_server(env, work / "server.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def endpoints(base_url: str) -> dict[str, str]:
    """Where the service info says the docs are; the tests open exactly those paths."""
    return httpx.get(f"{base_url}/", timeout=10).json()["endpoints"]


@pytest.fixture(scope="module")
def operations(base_url: str, endpoints: dict[str, str]) -> list[tuple[str, str, str]]:
    """(method, path, operationId) of every operation the served schema documents."""
    schema = httpx.get(base_url + endpoints["openapi"], timeout=10).json()
    return [
        (method, path, operation["operationId"])
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def load_offline(url: str, work: Path, refused_port: int) -> LoadedPage:
    """Open `url` in a fresh headless Chromium that can reach only 127.0.0.1.

    A new profile each time, so no cached copy of a CDN file can stand in for the network.
    `--no-sandbox` because CI runs as root, where Chromium's sandbox will not start.
    """
    assert CHROMIUM is not None
    work.mkdir(parents=True)
    net_log = work / "netlog.json"
    completed = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--no-first-run",
            f"--user-data-dir={work / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            # IP literals need no resolver; they go to this proxy, which refuses them.
            # Chromium never sends loopback traffic through a proxy.
            f"--proxy-server=http://127.0.0.1:{refused_port}",
            f"--log-net-log={net_log}",
            f"--virtual-time-budget={RENDER_BUDGET_MS}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return LoadedPage(dom=completed.stdout, page_requests=_page_requests(net_log))


def _page_requests(net_log: Path) -> list[str]:
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    begin = log["constants"]["logEventPhase"]["PHASE_BEGIN"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job
        and event["phase"] == begin
        and event["params"].get("initiator", NOT_FROM_A_PAGE) != NOT_FROM_A_PAGE
    ]


def assert_everything_came_from_the_app(
    page: LoadedPage,
    served_html: str,
    base_url: str,
    openapi_path: str,
    tolerated: frozenset[str] = frozenset(),
) -> None:
    """No asset reference in the served HTML points off the app, and the network log shows
    no request to another origin except the `tolerated` ones the page does without."""
    for element in elements(served_html):
        reference = element.attrs.get("src") or (
            element.attrs.get("href") if element.tag == "link" else None
        )
        if reference:
            parts = urlsplit(reference)
            assert not parts.scheme, f"{element.tag} loads {reference} from elsewhere"
            assert not parts.netloc, f"{element.tag} loads {reference} from elsewhere"
    assert base_url + openapi_path in page.page_requests, "network log misses the page's fetches"
    elsewhere = [
        url
        for url in page.page_requests
        if not url.startswith(base_url + "/") and url not in tolerated
    ]
    assert not elsewhere, f"the page asked other origins for {elsewhere}"


def test_the_browser_reaches_nothing_beyond_loopback(tmp_path: Path, refused_port: int) -> None:
    """Without this, the other tests would pass on a machine with internet even if the
    pages still came from a CDN."""
    page = tmp_path / "probe.html"
    page.write_text(
        """<!DOCTYPE html><html><body>
        <p id="cdn" data-result="pending"></p>
        <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
            onload="cdn.dataset.result = 'loaded'"
            onerror="cdn.dataset.result = 'blocked'"></script>
        <p id="ip" data-result="pending"></p>
        <script src="http://1.1.1.1/"
            onload="ip.dataset.result = 'loaded'"
            onerror="ip.dataset.result = 'blocked'"></script>
        </body></html>"""
    )
    loaded = load_offline(page.as_uri(), tmp_path / "browser", refused_port)
    results = {
        element.attrs["id"]: element.attrs["data-result"]
        for element in elements(loaded.dom)
        if "data-result" in element.attrs
    }
    assert results == {"cdn": "blocked", "ip": "blocked"}


def test_swagger_ui_renders_every_operation_offline(
    base_url: str,
    endpoints: dict[str, str],
    operations: list[tuple[str, str, str]],
    tmp_path: Path,
    refused_port: int,
) -> None:
    url = base_url + endpoints["docs"]
    page = load_offline(url, tmp_path / "browser", refused_port)
    rendered = elements(page.dom)
    rendered_paths = Counter(
        element.attrs["data-path"]
        for element in rendered
        if "opblock-summary-path" in element.classes
    )
    rendered_methods = Counter(
        css.removeprefix("opblock-")
        for element in rendered
        if "opblock" in element.classes
        for css in element.classes
        if css.removeprefix("opblock-") in HTTP_METHODS
    )
    assert rendered_paths["/api/mv/generate_video"] == 1
    assert rendered_paths == Counter(path for _, path, _ in operations)
    assert rendered_methods == Counter(method for method, _, _ in operations)
    served = httpx.get(url, timeout=10).text
    assert_everything_came_from_the_app(page, served, base_url, endpoints["openapi"])


def test_redoc_renders_every_operation_offline(
    base_url: str,
    endpoints: dict[str, str],
    operations: list[tuple[str, str, str]],
    tmp_path: Path,
    refused_port: int,
) -> None:
    url = base_url + endpoints["redoc"]
    page = load_offline(url, tmp_path / "browser", refused_port)
    rendered = elements(page.dom)
    rendered_operations = {
        section.removeprefix("operation/")
        for element in rendered
        if (section := element.attrs.get("data-section-id", "")).startswith("operation/")
    }
    assert rendered_operations == {operation_id for _, _, operation_id in operations}
    assert "/api/mv/generate_video" in page.dom
    assert not [element for element in rendered if element.attrs.get("src") == REDOC_FOOTER_LOGO]
    served = httpx.get(url, timeout=10).text
    assert_everything_came_from_the_app(
        page, served, base_url, endpoints["openapi"], tolerated=frozenset({REDOC_FOOTER_LOGO})
    )
