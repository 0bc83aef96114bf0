"""Scene prompts from Gemini `generateContent`, constrained to a JSON schema and checked."""

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from google import genai
from google.genai import types as genai_types
from pydantic import BaseModel, ValidationError

from backend.mv import debug
from backend.mv.errors import ContentPolicyViolation, GenerationFailed
from backend.mv.providers import JobPolicy, Provider, require_client
from backend.mv.providers.deadline import Deadline
from backend.mv.providers.gemini.errors import GEMINI_ERRORS
from backend.mv.providers.retries import call_with_retries
from backend.mv.scene_generator import CreateScenesRequest, Scene

logger = logging.getLogger(__name__)

SCENE_ATTEMPTS = 2
"""A malformed or short answer is asked for once more, then `GENERATION_FAILED`."""
BLOCKING_FINISH_REASONS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"}


class SceneResponse(BaseModel):
    """The JSON schema Gemini's answer is constrained to."""

    scenes: list[Scene]


SCENE_RESPONSE_SCHEMA = SceneResponse.model_json_schema()
"""Built once: the SDK would rebuild it from the model on every call."""


def _check_scenes(text: str | None, expected: int) -> list[Scene]:
    """Parse and check the model's JSON; raise `GenerationFailed` when it is unusable."""
    try:
        scenes = SceneResponse.model_validate_json(text or "").scenes
    except ValidationError as exc:
        raise GenerationFailed(
            "The model's answer was not valid scene JSON", backend=Provider.GEMINI
        ) from exc
    if len(scenes) != expected:
        raise GenerationFailed(
            f"The model returned {len(scenes)} scenes instead of {expected}",
            backend=Provider.GEMINI,
        )
    if any(not scene.description.strip() for scene in scenes):
        raise GenerationFailed(
            "The model returned an empty scene description", backend=Provider.GEMINI
        )
    return scenes


def _refusal(response: genai_types.GenerateContentResponse) -> ContentPolicyViolation | None:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = getattr(feedback.block_reason, "value", feedback.block_reason)
        return ContentPolicyViolation(
            f"The prompt was blocked by the provider's safety filter ({reason})",
            backend=Provider.GEMINI,
        )
    for candidate in response.candidates or []:
        reason = getattr(candidate.finish_reason, "value", candidate.finish_reason)
        if reason in BLOCKING_FINISH_REASONS:
            return ContentPolicyViolation(
                f"The answer was stopped by the provider's safety filter ({reason})",
                backend=Provider.GEMINI,
            )
    return None


@dataclass
class GeminiSceneWriter:
    client: genai.Client | None
    model: str
    policy: JobPolicy
    backend: ClassVar[Provider] = Provider.GEMINI

    async def write(
        self,
        prompt: str,
        request: CreateScenesRequest,  # noqa: ARG002 - the prompt already holds its words
        used: dict[str, Any],
    ) -> list[Scene]:
        client = require_client(self.client, Provider.GEMINI, "GEMINI_API_KEY")
        deadline = Deadline(self.policy.timeout_seconds)
        async with deadline.enforced(Provider.GEMINI):
            return await self._ask(client, prompt, used["number_of_scenes"], deadline)

    async def _ask(
        self, client: genai.Client, prompt: str, expected: int, deadline: Deadline
    ) -> list[Scene]:
        config = genai_types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=SCENE_RESPONSE_SCHEMA
        )
        failure: GenerationFailed | None = None
        for _ in range(SCENE_ATTEMPTS):
            response = await call_with_retries(
                lambda: client.aio.models.generate_content(
                    model=self.model, contents=prompt, config=config
                ),
                errors=GEMINI_ERRORS,
                backend=Provider.GEMINI,
                max_attempts=self.policy.max_attempts,
                deadline=deadline,
            )
            debug.log_gemini_response(response)
            if refusal := _refusal(response):
                raise refusal
            try:
                return _check_scenes(response.text, expected)
            except GenerationFailed as exc:
                logger.warning("unusable scene answer, %s", exc.message)
                failure = exc
        assert failure is not None
        raise failure
