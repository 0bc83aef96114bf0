"""Shared pytest fixtures for the backend."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.testing.fake_upstream import FakeUpstream

# --------------------------------------------------------------------------- fake upstream


@pytest.fixture(scope="session")
def fake_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstream]:
    """The fake Gemini + Replicate upstream over HTTPS, started once per session.

    `SSL_CERT_FILE` points at its CA for the rest of the session (restored afterwards) so
    SDK clients built from now on trust it; build them after requesting this fixture.
    """
    cert_dir: Path = tmp_path_factory.mktemp("fake-upstream")
    with FakeUpstream(cert_dir=cert_dir) as fake, pytest.MonkeyPatch.context() as env:
        env.setenv("SSL_CERT_FILE", str(fake.ca_cert_path))
        yield fake


@pytest.fixture(autouse=True)
def _fresh_fake_upstream(request: pytest.FixtureRequest) -> None:
    """Reset the fake before each test that uses it; never start it for tests that don't."""
    if "fake_upstream" in request.fixturenames:
        request.getfixturevalue("fake_upstream").reset()
