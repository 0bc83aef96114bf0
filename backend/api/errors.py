"""Renders every error, on every route, in the one JSON shape DESIGN.md documents, and
describes that shape, with an example per error code, in the OpenAPI schema."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.logging_setup import redact, request_id_var
from backend.mv.errors import (
    MethodNotAllowed,
    MVError,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    problem,
)
from backend.mv.storage.identity import utc_now_iso

logger = logging.getLogger(__name__)

EXAMPLE_TIMESTAMP = "2026-01-01T00:00:00Z"
EXAMPLE_REQUEST_ID = "5b0f2c8e9a7d4e1f8c3b6a2d9e0f1a2b"
PROVIDER_STATUSES = {422, 429, 502, 503, 504}
"""Statuses whose examples name the provider that answered."""
EXAMPLE_DETAILS: dict[type[MVError], list[Any]] = {
    ValidationFailed: [problem("aspect_ratio", "must be one of ['16:9', '9:16']", "enum")],
}


class ErrorResponse(BaseModel):
    """The one error shape, on every route and status."""

    error: str = Field(examples=["Content refused by the provider's safety filter"])
    error_code: str = Field(examples=["CONTENT_POLICY_VIOLATION"])
    message: str
    backend_used: str | None = None
    timestamp: str = Field(examples=[EXAMPLE_TIMESTAMP])
    request_id: str
    details: list[Any] = Field(default_factory=list)


def error_body(error: MVError) -> dict[str, Any]:
    return {**error.document(), "timestamp": utc_now_iso(), "request_id": request_id_var.get()}


def job_error(error: MVError) -> dict[str, Any]:
    """A job's `error`: the body the synchronous call answers, plus its `status`."""
    return {**error_body(error), "status": error.status_code}


def error_response(error: MVError) -> JSONResponse:
    return JSONResponse(
        error_body(error), status_code=error.status_code, headers=error.answer_headers()
    )


def _error_classes(status: int) -> list[type[MVError]]:
    """Every error a client may get with `status`, from the hierarchy itself."""
    found: list[type[MVError]] = []
    pending = [MVError]
    while pending:
        error_class = pending.pop(0)
        if error_class.status_code == status:
            found.append(error_class)
        pending.extend(error_class.__subclasses__())
    return found


def _example(error_class: type[MVError]) -> dict[str, Any]:
    return {
        "error": error_class.title,
        "error_code": error_class.error_code,
        "message": error_class.example,
        "backend_used": "replicate" if error_class.status_code in PROVIDER_STATUSES else None,
        "timestamp": EXAMPLE_TIMESTAMP,
        "request_id": EXAMPLE_REQUEST_ID,
        "details": EXAMPLE_DETAILS.get(error_class, []),
    }


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for `statuses`: the error shape, a description naming each
    error code, and one example per code, all made from the error classes."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        classes = _error_classes(status)
        responses[status] = {
            "model": ErrorResponse,
            "description": "; ".join(f"{cls.title} (`{cls.error_code}`)" for cls in classes),
            "content": {
                "application/json": {
                    "examples": {
                        cls.__name__: {"summary": cls.error_code, "value": _example(cls)}
                        for cls in classes
                    }
                }
            },
        }
    return responses


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


async def _handle_mv_error(request: Request, exc: Exception) -> JSONResponse:
    """Render a domain error; provider text inside it is scrubbed of our own keys, in case a
    provider ever echoes one back (the log scrubs its own lines, cause included)."""
    assert isinstance(exc, MVError)
    exc.message = redact(exc.message, request.app.state.runtime.settings.secrets)
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
