"""The API contract's fixed shapes, for tests to assert on."""

import httpx

ERROR_KEYS = {
    "error",
    "error_code",
    "message",
    "backend_used",
    "timestamp",
    "request_id",
    "details",
}


def assert_error_shape(response: httpx.Response, status: int, error_code: str) -> dict:
    """The response is an error of `status`/`error_code` in DESIGN.md's one error shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["error_code"] == error_code
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["timestamp"].endswith("Z")
    return body
