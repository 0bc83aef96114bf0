"""The one error hierarchy of the service.

Each subclass is a row of DESIGN.md's error table. The domain raises them (translating SDK
exceptions at the boundary with `raise ... from exc`, so the cause survives in logs); one
exception handler (`backend.api.errors`) renders them all in the documented JSON shape, and
the OpenAPI error examples are made from each class's `example`.
"""

from typing import Any


class MVError(Exception):
    """Base of every error a client may see; `message` must be safe to show (no secrets)."""

    status_code = 500
    error_code = "INTERNAL_ERROR"
    title = "Internal error"
    example = "Unexpected server error"
    """A realistic message, shown in the OpenAPI examples."""
    retryable = False
    """True only when sending again is safe: no paid job can have been started by it."""
    retry_hint_seconds: float | None = None
    """The provider's own Retry-After, when it gave one."""
    default_retry_after_seconds: int | None = None
    """The Retry-After sent when the raiser gives none; None sends no header."""

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
        self.retry_after_seconds = (
            self.default_retry_after_seconds if retry_after_seconds is None else retry_after_seconds
        )
        self.headers = headers or {}

    def document(self) -> dict[str, Any]:
        """The error's part of the one error shape; the API adds `timestamp` and
        `request_id`, a job also its `status`."""
        return {
            "error": self.title,
            "error_code": self.error_code,
            "message": self.message,
            "backend_used": self.backend,
            "details": self.details,
        }

    def answer_headers(self) -> dict[str, str]:
        """The headers an answer with this error carries (`Retry-After` among them)."""
        headers = dict(self.headers)
        if self.retry_after_seconds is not None:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers


class RenderFailed(MVError):
    """ffmpeg could not render a music video that passed every check: the server's fault
    (500), its reason (ffmpeg's stderr) in the log, never in the answer."""

    example = "The video could not be rendered (ffmpeg exited with status 1)"


class ValidationFailed(MVError):
    status_code = 400
    error_code = "VALIDATION_ERROR"
    title = "Invalid request"
    example = "aspect_ratio: must be one of ['16:9', '9:16']"

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
    example = "A valid API key is required (Authorization: Bearer or X-API-Key)"


class NotFound(MVError):
    status_code = 404
    error_code = "NOT_FOUND"
    title = "Not found"
    example = "No video with id '3f2b9c1e-8d4a-4f6e-9b7a-1c2d3e4f5a6b'"


class MethodNotAllowed(MVError):
    status_code = 405
    error_code = "NOT_FOUND"
    title = "Method not allowed"
    example = "Method Not Allowed"


class RequestTimeout(MVError):
    """The client did not send its request (headers, then body) in the time allowed."""

    status_code = 408
    error_code = "REQUEST_TIMEOUT"
    title = "Request timeout"
    example = "The request body did not arrive within 30 s"


class Conflict(MVError):
    status_code = 409
    error_code = "CONFLICT"
    title = "Conflict"
    example = "This Idempotency-Key was already used with a different request body"


class PayloadTooLarge(MVError):
    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"
    title = "Payload too large"
    example = "Request body exceeds the limit of 16777216 bytes"


class RangeNotSatisfiable(MVError):
    status_code = 416
    error_code = "RANGE_NOT_SATISFIABLE"
    title = "Range not satisfiable"
    example = "The range 'bytes=99999999-' is outside the file's 1048576 bytes"


class ClientClosedRequest(MVError):
    """The client left while its request still waited for a slot, before anything was paid.

    Nobody reads this answer (the connection is gone); it ends the request and is logged.
    499 is nginx's code for it, so proxies' logs agree with ours.
    """

    status_code = 499
    error_code = "CLIENT_CLOSED_REQUEST"
    title = "Client closed the request"
    example = "The client left while the request waited for a slot; nothing was started"


class HeadersTooLarge(MVError):
    status_code = 431
    error_code = "HEADERS_TOO_LARGE"
    title = "Request headers too large"
    example = "The request line and headers exceed the limit of 16384 bytes"


class ContentPolicyViolation(MVError):
    status_code = 422
    error_code = "CONTENT_POLICY_VIOLATION"
    title = "Content refused by the provider's safety filter"
    example = "The provider refused the content: Prediction failed: flagged as sensitive (E005)"


class RateLimited(MVError):
    """The provider's rate limit, still hit after our retries; always answered with Retry-After."""

    status_code = 429
    error_code = "RATE_LIMIT_EXCEEDED"
    title = "Provider rate limit exceeded"
    example = "The provider's rate limit was hit: Request was throttled"
    default_retry_after_seconds = 30


class GenerationFailed(MVError):
    status_code = 502
    error_code = "GENERATION_FAILED"
    title = "Generation failed"
    example = "The model failed: prediction ended failed"


class BackendError(MVError):
    status_code = 502
    error_code = "BACKEND_ERROR"
    title = "Provider unavailable"
    example = "The provider could not be reached (ClientConnectorError)"


class BackendNotConfigured(MVError):
    status_code = 503
    error_code = "BACKEND_NOT_CONFIGURED"
    title = "Provider not configured"
    example = "REPLICATE_API_TOKEN is not set"


class ServerBusy(MVError):
    """The backend's queue is full (`MV_MAX_QUEUED_GENERATIONS`); nothing was started, so
    the client may send the same request again after `Retry-After`."""

    status_code = 503
    error_code = "SERVER_BUSY"
    title = "Server busy"
    example = "The video-replicate queue is full (256 requests waiting); try again shortly"
    default_retry_after_seconds = 10


class GenerationTimeout(MVError):
    status_code = 504
    error_code = "GENERATION_TIMEOUT"
    title = "Generation timed out"
    example = "The provider did not finish within 600 seconds"


class InsufficientStorage(MVError):
    """The output store cannot take a result: not writable, or less than `MV_MIN_FREE_BYTES`
    free. Checked before any paid call; also what a paid result that could not be stored
    ends in, once every attempt to store it failed."""

    status_code = 507
    error_code = "INSUFFICIENT_STORAGE"
    title = "Insufficient storage"
    example = "The output store has 512 MiB free, less than the 1024 MiB required"

    @classmethod
    def while_storing(cls, exc: OSError, *, backend: str | None = None) -> "InsufficientStorage":
        """A result that could not be stored; names the OS error, never the path."""
        reason = exc.strerror or type(exc).__name__
        return cls(f"The result could not be stored ({reason})", backend=backend)
