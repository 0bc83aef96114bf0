"""Property-based fuzzing of the whole API from its own OpenAPI schema, in mock mode.

schemathesis generates valid and invalid requests for every operation against the real
server process: no answer may be a 5xx, every answer must match its documented schema, and
every error must be in the error shape. Examples are bounded so the suite stays fast.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from backend.main import create_app
from backend.testing.apps import make_settings
from backend.testing.server_process import running_server

MAX_EXAMPLES = 30
# Some schema-valid requests are rightly refused: choices are checked against the allowed
# lists in the YAML configs, ids must name stored artifacts, and a reference image must
# really be an image. Every other check (no 5xx, documented status codes, response schemas,
# the error shape, invalid data refused) stays on.


schema = schemathesis.openapi.from_dict(create_app(make_settings(Path("unused"))).openapi())


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server in mock mode; the schema under test is the one it serves."""
    work = tmp_path_factory.mktemp("fuzz")
    env = {
        "MV_MOCK_MODE": "true",
        "MV_MOCK_DELAY_SECONDS": "0",
        "MV_OUTPUT_DIR": str(work / "outputs"),
        "MV_API_KEYS": "",
    }
    with running_server(env, work / "server.log") as (url, _):
        yield url


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_matches_the_documented_contract(
    case: schemathesis.Case, base_url: str
) -> None:
    case.call_and_validate(base_url=base_url, excluded_checks=[positive_data_acceptance])
