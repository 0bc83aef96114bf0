"""A fake Gemini and Replicate upstream that speaks the providers' real wire protocols.

Tests and the benchmark point the real `google-genai` (2.x) and `replicate` SDKs at this
server instead of mocking them, so everything between our code and the socket (URL
building, auth headers, JSON parsing, retries, TLS) is exercised for real. It serves HTTPS
on 127.0.0.1 with a throwaway CA from `trustme`; clients trust it through `SSL_CERT_FILE`,
which httpx and google-genai read when a client is constructed.

Generations take `latency_seconds` of wall-clock time; faults are scripted per route with
`FakeUpstream.inject`. The server runs uvicorn on its own thread and event loop, so it is
independent of the per-test event loops of pytest-asyncio. Run it as a process for the
benchmark: `python -m backend.testing.fake_upstream --port 0 --cert-dir DIR`.

Each provider is one module (`gemini`, `replicate`) with a `provider.Provider` subclass
that declares its routes, the faults they accept and its auth; `server.PROVIDERS` lists
them. Import from this package: it re-exports everything tests use.
"""

from backend.testing.fake_upstream.faults import (
    GENERIC_MODEL_ERROR,
    VEO_FILTERED_REASON,
    CandidateBlocked,
    DropConnection,
    EmptyDescription,
    Fault,
    FewerScenes,
    HttpError,
    PauseDownload,
    PredictionFailed,
    PromptBlocked,
    RawText,
    SlowGeneration,
    VeoFiltered,
    VeoOperationError,
)
from backend.testing.fake_upstream.gemini import (
    DEFAULT_SCENE_COUNT,
    PREDICT_LONG_RUNNING_RESPONSE_TYPE,
    SCENE_COUNT_PATTERN,
    google_api_key_invalid,
    google_rate_limited,
    google_server_error,
)
from backend.testing.fake_upstream.media import CHUNK_BYTES, DEFAULT_CLIP_BYTES, MIN_CLIP_BYTES
from backend.testing.fake_upstream.records import GeneratedFile, RecordedRequest
from backend.testing.fake_upstream.replicate import (
    IMAGE_SHORT_SIDE_PX,
    REPLICATE_MAX_WAIT_SECONDS,
    SENSITIVE_CONTENT_ERROR,
    prediction_flagged_sensitive,
    replicate_rate_limited,
    replicate_server_error,
    replicate_unauthenticated,
)
from backend.testing.fake_upstream.server import ROUTES, FakeUpstream, Route

__all__ = [
    "CHUNK_BYTES",
    "DEFAULT_CLIP_BYTES",
    "DEFAULT_SCENE_COUNT",
    "GENERIC_MODEL_ERROR",
    "IMAGE_SHORT_SIDE_PX",
    "MIN_CLIP_BYTES",
    "PREDICT_LONG_RUNNING_RESPONSE_TYPE",
    "REPLICATE_MAX_WAIT_SECONDS",
    "ROUTES",
    "SCENE_COUNT_PATTERN",
    "SENSITIVE_CONTENT_ERROR",
    "VEO_FILTERED_REASON",
    "CandidateBlocked",
    "DropConnection",
    "EmptyDescription",
    "FakeUpstream",
    "Fault",
    "FewerScenes",
    "GeneratedFile",
    "HttpError",
    "PauseDownload",
    "PredictionFailed",
    "PromptBlocked",
    "RawText",
    "RecordedRequest",
    "Route",
    "SlowGeneration",
    "VeoFiltered",
    "VeoOperationError",
    "google_api_key_invalid",
    "google_rate_limited",
    "google_server_error",
    "prediction_flagged_sensitive",
    "replicate_rate_limited",
    "replicate_server_error",
    "replicate_unauthenticated",
]
