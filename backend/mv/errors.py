"""The one error hierarchy of the service.

Each subclass is a row of DESIGN.md's error table. The domain raises them (translating SDK
exceptions at the boundary with `raise ... from exc`, so the cause survives in logs); one
exception handler in `backend.main` renders them all in the documented JSON shape.
"""

from typing import Any


class MVError(Exception):
    """Base of every error a client may see; `message` must be safe to show (no secrets)."""

    status_code = 500
    error_code = "INTERNAL_ERROR"
    title = "Internal error"
    retryable = False
    """True only when the provider cannot have started a job, so sending again is safe."""
    retry_hint_seconds: float | None = None
    """The provider's own Retry-After, when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        details: list[Any] | None = None,
        retry_after_seconds: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.details = details or []
        self.retry_after_seconds = retry_after_seconds
        self.headers = headers or {}


class ValidationFailed(MVError):
    status_code = 400
    error_code = "VALIDATION_ERROR"
    title = "Invalid request"

    @classmethod
    def from_problems(cls, problems: list[dict[str, str]]) -> "ValidationFailed":
        """One error listing every problem found (each a `problem(...)`), all at once."""
        summary = "; ".join(f"{item['field']}: {item['message']}" for item in problems)
        return cls(summary, details=problems)

    @classmethod
    def about(cls, field: str, message: str, kind: str = "value_error") -> "ValidationFailed":
        return cls.from_problems([problem(field, message, kind)])


def problem(field: str, message: str, kind: str = "value_error") -> dict[str, str]:
    """One entry of a validation error's `details`, shaped like FastAPI's own."""
    return {"field": field, "message": message, "type": kind}


class Unauthorized(MVError):
    status_code = 401
    error_code = "UNAUTHORIZED"
    title = "Unauthorized"


class NotFound(MVError):
    status_code = 404
    error_code = "NOT_FOUND"
    title = "Not found"


class MethodNotAllowed(MVError):
    status_code = 405
    error_code = "NOT_FOUND"
    title = "Method not allowed"


class Conflict(MVError):
    status_code = 409
    error_code = "CONFLICT"
    title = "Conflict"


class PayloadTooLarge(MVError):
    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"
    title = "Payload too large"


class RangeNotSatisfiable(MVError):
    status_code = 416
    error_code = "RANGE_NOT_SATISFIABLE"
    title = "Range not satisfiable"


class ContentPolicyViolation(MVError):
    status_code = 422
    error_code = "CONTENT_POLICY_VIOLATION"
    title = "Content refused by the provider's safety filter"


class RateLimited(MVError):
    """The provider's rate limit, still hit after our retries; always answered with Retry-After."""

    status_code = 429
    error_code = "RATE_LIMIT_EXCEEDED"
    title = "Provider rate limit exceeded"
    default_retry_after_seconds = 30

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        if self.retry_after_seconds is None:
            self.retry_after_seconds = self.default_retry_after_seconds


class GenerationFailed(MVError):
    status_code = 502
    error_code = "GENERATION_FAILED"
    title = "Generation failed"


class BackendError(MVError):
    status_code = 502
    error_code = "BACKEND_ERROR"
    title = "Provider unavailable"


class BackendNotConfigured(MVError):
    status_code = 503
    error_code = "BACKEND_NOT_CONFIGURED"
    title = "Provider not configured"


class GenerationTimeout(MVError):
    status_code = 504
    error_code = "GENERATION_TIMEOUT"
    title = "Generation timed out"
