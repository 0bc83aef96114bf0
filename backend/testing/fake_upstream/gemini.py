"""The Gemini Developer API as google-genai (2.x) calls it, and Google's error answers.

generateContent answers scene JSON; Veo's predictLongRunning checks its body as the API
does (unknown fields and malformed reference images are a 400 `INVALID_ARGUMENT`) and
starts an operation that is done `latency_seconds` later with one clip per sample; a clip's
download answers 302 to a signed media URL, as the real file service does.
"""

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute

from backend.testing.fake_upstream.faults import (
    ANY_ROUTE,
    CandidateBlocked,
    DropConnection,
    EmptyDescription,
    FewerScenes,
    HttpError,
    PromptBlocked,
    RawText,
    SlowGeneration,
    VeoFiltered,
    VeoOperationError,
    hold,
)
from backend.testing.fake_upstream.provider import Interrupt, Provider

if TYPE_CHECKING:
    from backend.testing.fake_upstream.server import FakeUpstream

GeminiRoute = Literal[
    "gemini.generate_content",
    "gemini.predict_long_running",
    "gemini.operation",
    "gemini.download",
]

DEFAULT_SCENE_COUNT = 4
SCENE_COUNT_PATTERN = re.compile(r"exactly (\d+) scenes", re.IGNORECASE)
PREDICT_LONG_RUNNING_RESPONSE_TYPE = (
    "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
)


def _google_error(
    code: int, status: str, message: str, details: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Google's `{"error": google.rpc.Status}` body."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def google_rate_limited(retry_delay_seconds: int = 7) -> HttpError:
    """Gemini's quota answer: 429 RESOURCE_EXHAUSTED with a RetryInfo detail."""
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": f"{retry_delay_seconds}s",
        },
    ]
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        f"Please retry in {retry_delay_seconds}s."
    )
    return HttpError(429, _google_error(429, "RESOURCE_EXHAUSTED", message, details))


def google_api_key_invalid() -> HttpError:
    """Gemini's answer to a bad key: 400 INVALID_ARGUMENT, ErrorInfo reason API_KEY_INVALID."""
    message = "API key not valid. Please pass a valid API key."
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        },
    ]
    return HttpError(400, _google_error(400, "INVALID_ARGUMENT", message, details))


def google_server_error(status: int = 500) -> HttpError:
    """A Gemini 5xx: 500 INTERNAL or 503 UNAVAILABLE ("model is overloaded")."""
    if status == 503:
        body = _google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    else:
        body = _google_error(
            status, "INTERNAL", "An internal error has occurred. Please retry or report it."
        )
    return HttpError(status, body)


@dataclass
class _VeoOperation:
    name: str
    ready_at: float
    outcome: VeoFiltered | VeoOperationError | None
    sample_count: int
    file_ids: list[str] = field(default_factory=list)
    """Filled when the operation is first seen done."""


@dataclass(frozen=True)
class _MediaGrant:
    """What a signed media URL (the target of Gemini's download redirect) serves."""

    file_id: str
    drop_after_bytes: int | None


VEO_INSTANCE_FIELDS = frozenset({"prompt", "image", "lastFrame", "video", "referenceImages"})
VEO_PARAMETER_FIELDS = frozenset(
    {
        "sampleCount",
        "aspectRatio",
        "durationSeconds",
        "personGeneration",
        "negativePrompt",
        "resolution",
        "enhancePrompt",
    }
)
"""What the Developer API's Veo `predictLongRunning` takes (google-genai 2.x sends these)."""
VEO_REFERENCE_TYPES = frozenset({"ASSET", "STYLE"})


def _invalid_argument(message: str) -> Response:
    return JSONResponse(_google_error(400, "INVALID_ARGUMENT", message), status_code=400)


def _unknown_field(names: Any, allowed: frozenset[str], where: str) -> str | None:
    for name in names:
        if name not in allowed:
            return (
                f'Invalid JSON payload received. Unknown name "{name}" '
                f"at '{where}': Cannot find field."
            )
    return None


def _veo_body_problem(body: Any) -> str | None:
    """What Google would refuse in a predictLongRunning body, or None."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received."
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        return "instances: exactly one instance is required"
    instance = instances[0]
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        return "parameters: must be an object"
    problem = (
        _unknown_field(body, frozenset({"instances", "parameters"}), "")
        or _unknown_field(instance, VEO_INSTANCE_FIELDS, "instances[0]")
        or _unknown_field(parameters, VEO_PARAMETER_FIELDS, "parameters")
    )
    if problem:
        return problem
    if not isinstance(instance.get("prompt"), str):
        return "instances[0].prompt: a text prompt is required"
    for index, reference in enumerate(instance.get("referenceImages", [])):
        image = reference.get("image") if isinstance(reference, dict) else None
        if not isinstance(image, dict) or not isinstance(image.get("mimeType"), str):
            return f"instances[0].referenceImages[{index}].image: bytes and mimeType required"
        try:
            base64.b64decode(image.get("bytesBase64Encoded", ""), validate=True)
        except (binascii.Error, TypeError):
            return f"instances[0].referenceImages[{index}].image.bytesBase64Encoded: not base64"
        if reference.get("referenceType") not in VEO_REFERENCE_TYPES:
            return f"instances[0].referenceImages[{index}].referenceType: ASSET or STYLE"
    return None


def _new_google_id() -> str:
    """Lower-case alphanumerics only: the SDK extracts file ids with `[a-z0-9]+`."""
    return uuid.uuid4().hex[:16]


def _prompt_text(body: Mapping[str, Any]) -> str:
    """All text parts of a generateContent request's `contents`, in order."""
    texts = [
        part["text"]
        for content in body.get("contents") or []
        for part in content.get("parts") or []
        if isinstance(part.get("text"), str)
    ]
    return "\n".join(texts)


def _scene_count(body: Mapping[str, Any]) -> int:
    """`exactly N scenes` from the prompt or the system instruction, else the default."""
    system = body.get("systemInstruction") or {}
    instruction = " ".join(part.get("text", "") for part in system.get("parts") or [])
    match = SCENE_COUNT_PATTERN.search(f"{_prompt_text(body)}\n{instruction}")
    return int(match[1]) if match else DEFAULT_SCENE_COUNT


class Gemini(Provider):
    """Gemini Developer API: an API key in `x-goog-api-key` (or `?key=`) on every route."""

    faults_by_route: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "gemini.generate_content": (
            *ANY_ROUTE,
            SlowGeneration,
            PromptBlocked,
            CandidateBlocked,
            RawText,
            FewerScenes,
            EmptyDescription,
        ),
        "gemini.predict_long_running": (
            *ANY_ROUTE,
            SlowGeneration,
            VeoFiltered,
            VeoOperationError,
        ),
        "gemini.operation": ANY_ROUTE,
        "gemini.download": ANY_ROUTE,
    }
    download_routes: ClassVar[frozenset[str]] = frozenset({"gemini.download"})

    def __init__(self, upstream: "FakeUpstream") -> None:
        super().__init__(upstream)
        self._operations: dict[str, _VeoOperation] = {}
        self._media_grants: dict[str, _MediaGrant] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            StarletteRoute(
                "/v1beta/models/{model}:generateContent", self._generate_content, methods=["POST"]
            ),
            StarletteRoute(
                "/v1beta/models/{model}:predictLongRunning",
                self._predict_long_running,
                methods=["POST"],
            ),
            StarletteRoute(
                "/v1beta/models/{model}/operations/{operation_id}",
                self._get_operation,
                methods=["GET"],
            ),
            StarletteRoute("/v1beta/files/{file_id}:download", self._download, methods=["GET"]),
            StarletteRoute("/gemini-media/{grant}", self._media, methods=["GET"]),
        ]

    # The key guards every Gemini route alike, so `route` goes unused.
    def check_auth(self, request: Request, route: str) -> None:  # noqa: ARG002
        if not (request.headers.get("x-goog-api-key") or request.query_params.get("key")):
            message = (
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity "
                "to call this API."
            )
            body = _google_error(403, "PERMISSION_DENIED", message)
            raise Interrupt(JSONResponse(body, status_code=403))

    def reset(self) -> None:
        self._operations.clear()
        self._media_grants.clear()

    async def _generate_content(self, request: Request) -> Response:
        record, fault = await self.enter(request, "gemini.generate_content")
        body = record.json or {}
        model = request.path_params["model"]
        await hold(request.receive, self.upstream.latency(fault))
        prompt = " ".join(_prompt_text(body).split())
        answer: dict[str, Any] = {
            "modelVersion": model,
            "responseId": uuid.uuid4().hex,
        }
        if isinstance(fault, PromptBlocked):
            answer["promptFeedback"] = {"blockReason": fault.reason}
            answer["usageMetadata"] = {"promptTokenCount": len(prompt) // 4 + 1}
            return JSONResponse(answer)
        if isinstance(fault, CandidateBlocked):
            rating = {
                "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                "probability": "HIGH",
                "blocked": True,
            }
            candidate = {"finishReason": fault.finish_reason, "index": 0, "safetyRatings": [rating]}
            answer["candidates"] = [candidate]
            answer["usageMetadata"] = {"promptTokenCount": len(prompt) // 4 + 1}
            return JSONResponse(answer)
        if isinstance(fault, RawText):
            text = fault.text
        else:
            count = _scene_count(body)
            scenes = [
                {
                    "description": f"Scene {index} of {count}: {prompt}",
                    "negative_description": f"Scene {index}: blurry footage, warped faces, text",
                }
                for index in range(1, count + 1)
            ]
            if isinstance(fault, FewerScenes):
                scenes = scenes[: max(count - fault.missing, 0)]
            if isinstance(fault, EmptyDescription):
                scenes[fault.scene_index]["description"] = ""
            text = json.dumps({"scenes": scenes})
        prompt_tokens, text_tokens = len(prompt) // 4 + 1, len(text) // 4 + 1
        answer["candidates"] = [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ]
        answer["usageMetadata"] = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": text_tokens,
            "totalTokenCount": prompt_tokens + text_tokens,
        }
        return JSONResponse(answer)

    async def _predict_long_running(self, request: Request) -> Response:
        record, fault = await self.enter(request, "gemini.predict_long_running")
        problem = _veo_body_problem(record.json)
        if problem is not None:
            return _invalid_argument(problem)
        parameters = record.json.get("parameters") or {}
        operation_id = _new_google_id()
        name = f"models/{request.path_params['model']}/operations/{operation_id}"
        self._operations[operation_id] = _VeoOperation(
            name=name,
            ready_at=time.monotonic() + self.upstream.latency(fault),
            outcome=fault if isinstance(fault, VeoFiltered | VeoOperationError) else None,
            sample_count=int(parameters.get("sampleCount") or 1),
        )
        return JSONResponse({"name": name})

    def _file_uri(self, file_id: str) -> str:
        return f"{self.upstream.base_url}/v1beta/files/{file_id}:download?alt=media"

    async def _get_operation(self, request: Request) -> Response:
        await self.enter(request, "gemini.operation")
        operation = self._operations.get(request.path_params["operation_id"])
        if operation is None:
            body = _google_error(404, "NOT_FOUND", "Operation not found.")
            return JSONResponse(body, status_code=404)
        if time.monotonic() < operation.ready_at:
            # proto3 JSON omits `done: false`: a running operation is just its name.
            return JSONResponse({"name": operation.name})
        answer: dict[str, Any] = {"name": operation.name, "done": True}
        if isinstance(operation.outcome, VeoOperationError):
            answer["error"] = {
                "code": operation.outcome.code,
                "message": operation.outcome.message,
            }
            return JSONResponse(answer)
        if isinstance(operation.outcome, VeoFiltered):
            video_response: dict[str, Any] = {
                "raiMediaFilteredCount": len(operation.outcome.reasons),
                "raiMediaFilteredReasons": list(operation.outcome.reasons),
            }
        else:
            while len(operation.file_ids) < operation.sample_count:
                file_id = _new_google_id()
                self.upstream.add_file(file_id, self._file_uri(file_id), "video/mp4")
                operation.file_ids.append(file_id)
            video_response = {
                "generatedSamples": [
                    {"video": {"uri": self._file_uri(file_id)}} for file_id in operation.file_ids
                ]
            }
        answer["response"] = {
            "@type": PREDICT_LONG_RUNNING_RESPONSE_TYPE,
            "generateVideoResponse": video_response,
        }
        return JSONResponse(answer)

    async def _download(self, request: Request) -> Response:
        """Redirect to a signed media URL, as the real file service does (302)."""
        _, fault = await self.enter(request, "gemini.download")
        file_id = request.path_params["file_id"]
        if not self.upstream.has_file(file_id):
            body = _google_error(404, "NOT_FOUND", f"File {file_id} not found.")
            return JSONResponse(body, status_code=404)
        drop_after = fault.after_bytes if isinstance(fault, DropConnection) else None
        grant = uuid.uuid4().hex
        self._media_grants[grant] = _MediaGrant(file_id, drop_after)
        return RedirectResponse(f"{self.upstream.base_url}/gemini-media/{grant}", status_code=302)

    async def _media(self, request: Request) -> Response:
        await self.upstream.record(request, "gemini.media")
        grant = self._media_grants.get(request.path_params["grant"])
        if grant is None:
            return Response("signed URL expired", status_code=403, media_type="text/plain")
        return self.upstream.media_response(grant.file_id, grant.drop_after_bytes)
