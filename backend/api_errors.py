"""Renders every error, on every route, in the one JSON shape DESIGN.md documents."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.logging_setup import request_id_var
from backend.mv.errors import (
    MethodNotAllowed,
    MVError,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from backend.mv.storage import utc_now_iso

logger = logging.getLogger(__name__)


def error_body(error: MVError) -> dict[str, Any]:
    return {
        "error": error.title,
        "error_code": error.error_code,
        "message": error.message,
        "backend_used": error.backend,
        "timestamp": utc_now_iso(),
        "request_id": request_id_var.get(),
        "details": error.details,
    }


def error_response(error: MVError) -> JSONResponse:
    headers = dict(error.headers)
    if error.retry_after_seconds is not None:
        headers["Retry-After"] = str(error.retry_after_seconds)
    return JSONResponse(error_body(error), status_code=error.status_code, headers=headers)


def _field_name(location: tuple[Any, ...]) -> str:
    """`("body", "scenes", 0, "idea")` → `scenes.0.idea`: the field as the client named it."""
    parts = location[1:] if location and location[0] in {"body", "path", "query"} else location
    return ".".join(str(part) for part in parts) or "body"


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's errors as `{field, message, type}`; malformed JSON names the body itself
    (FastAPI's location for it is a character offset)."""
    return [
        {
            "field": "body"
            if error.get("type") == "json_invalid"
            else _field_name(tuple(error.get("loc", ()))),
            "message": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in exc.errors()
    ]


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


async def _handle_mv_error(request: Request, exc: Exception) -> JSONResponse:
    """Render a domain error; provider text inside it is scrubbed of our own keys, in case a
    provider ever echoes one back."""
    assert isinstance(exc, MVError)
    settings = request.app.state.runtime.settings
    secrets = [key for key in (settings.gemini_api_key, settings.replicate_api_token) if key]
    exc.message = _redact(exc.message, secrets)
    if exc.status_code >= 500:
        logger.warning("%s: %s", exc.error_code, exc.message, exc_info=exc.__cause__)
    return error_response(exc)


async def _handle_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in details[:5])
    return error_response(ValidationFailed(summary or "Invalid request", details=details))


async def _handle_http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_class = _HTTP_STATUS_ERRORS.get(exc.status_code)
    if error_class is None:
        error_class = ValidationFailed if exc.status_code < 500 else MVError
    return error_response(error_class(str(exc.detail), headers=dict(exc.headers or {})))


_HTTP_STATUS_ERRORS: dict[int, type[MVError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MVError, _handle_mv_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
