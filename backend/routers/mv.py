"""HTTP layer of the music-video endpoints: parse, call one domain function, shape the answer.

Every error answer has the shape documented in DESIGN.md (`ErrorResponse` below); the
status codes each route can give are listed in its OpenAPI entry.
"""

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from backend.dependencies import RuntimeDep
from backend.mv.scene_generator import CreateScenesRequest, CreateScenesResponse, generate_scenes

router = APIRouter(prefix="/api/mv", tags=["music video"])


class ErrorResponse(BaseModel):
    """The one error shape, on every route and status."""

    error: str = Field(examples=["Content refused by the provider's safety filter"])
    error_code: str = Field(examples=["CONTENT_POLICY_VIOLATION"])
    message: str
    backend_used: str | None = None
    timestamp: str = Field(examples=["2026-01-01T00:00:00Z"])
    request_id: str
    details: list[Any] = Field(default_factory=list)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Invalid request (`VALIDATION_ERROR`, per-field `details`)",
        401: "Missing or wrong API key (`UNAUTHORIZED`, only when MV_API_KEYS is set)",
        404: "Unknown id (`NOT_FOUND`)",
        409: "Conflict (`CONFLICT`)",
        413: "Body or reference image too large (`PAYLOAD_TOO_LARGE`)",
        416: "Range cannot be satisfied (`RANGE_NOT_SATISFIABLE`)",
        422: "Refused by the provider's safety filter (`CONTENT_POLICY_VIOLATION`)",
        429: "Provider rate limit (`RATE_LIMIT_EXCEEDED`, with Retry-After)",
        502: "Provider failed (`GENERATION_FAILED`) or unreachable (`BACKEND_ERROR`)",
        503: "Provider key missing or rejected (`BACKEND_NOT_CONFIGURED`)",
        504: "Generation exceeded MV_GENERATION_TIMEOUT_SECONDS (`GENERATION_TIMEOUT`)",
    }
    return {
        status: {"model": ErrorResponse, "description": descriptions[status]} for status in statuses
    }


GENERATION_ERRORS = _errors(400, 401, 413, 422, 429, 502, 503, 504)


@router.post(
    "/create_scenes",
    response_model=CreateScenesResponse,
    summary="Write scene prompts for a video idea (v1)",
    responses={**GENERATION_ERRORS, **_errors(409)},
)
async def create_scenes(request: CreateScenesRequest, runtime: RuntimeDep) -> CreateScenesResponse:
    """Gemini writes `number_of_scenes` self-contained Veo prompts for the idea and character.

    Fields left out take their defaults from `parameters.yaml` (the response's
    `metadata.defaults_applied` lists them). The scenes are also stored as `scenes.json` and
    `scenes.md` in a folder of their own (`output_dir`, or a fresh `scene_set_id`).
    Typical time: 10-60 s live, `MV_MOCK_DELAY_SECONDS` in mock mode.
    """
    return await generate_scenes(request, runtime)
