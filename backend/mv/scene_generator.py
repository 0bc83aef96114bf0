"""v1: scene prompts for a video idea, written by Gemini as structured JSON.

The prompt template and defaults come from `parameters.yaml` and `scene_prompts.yaml`; the
model's answer is constrained to the `SceneResponse` schema and checked (exact scene count,
no empty description) before anything is stored. Each scene set gets its own folder, so
concurrent requests never overwrite each other.
"""

import logging
import re
import time
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import anyio
from google.genai import types as genai_types
from pydantic import BaseModel, Field, ValidationError, field_validator

from backend.mv import debug
from backend.mv.errors import (
    Conflict,
    ContentPolicyViolation,
    GenerationFailed,
    ValidationFailed,
)
from backend.mv.fields import CheckedText, apply_defaults
from backend.mv.mock_provider import (
    MOCK_BACKEND,
    MOCK_SCENE_MODEL,
    mock_scene_descriptions,
    simulate_generation,
)
from backend.mv.providers import GEMINI_BACKEND
from backend.mv.runtime import Runtime
from backend.mv.storage import new_artifact_id, write_atomic, write_json_atomic
from backend.mv.upstream import Deadline, call_with_retries, translate_google_error

logger = logging.getLogger(__name__)

SCENES_FOLDER = "create_scenes"
RESERVATION_NAME = ".scene_set.reserved.tmp"
OUTPUT_DIR_PART = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_OUTPUT_DIR_DEPTH = 4
SCENE_ATTEMPTS = 2
BLOCKING_FINISH_REASONS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"}
OPTIONAL_FIELDS = (
    "character_characteristics",
    "number_of_scenes",
    "video_type",
    "video_characteristics",
    "camera_angle",
)


class Scene(BaseModel):
    description: str = Field(description="Self-contained Veo prompt for one clip")
    negative_description: str = Field(description="What must not appear in the clip")


class SceneResponse(BaseModel):
    """The JSON schema Gemini's answer is constrained to."""

    scenes: list[Scene]


class CreateScenesRequest(BaseModel):
    idea: Annotated[
        str,
        Field(
            max_length=2000,
            description="The core concept of the video, sent to the model verbatim",
            examples=["A robot discovers music in an abandoned city"],
        ),
        CheckedText,
    ]
    character_description: Annotated[
        str,
        Field(
            max_length=2000,
            description="Visual description of the main character",
            examples=["Silver metallic humanoid robot with a red shield"],
        ),
        CheckedText,
    ]
    character_characteristics: Annotated[
        str | None,
        Field(max_length=1000, description="Personality traits; default from parameters.yaml"),
        CheckedText,
    ] = None
    number_of_scenes: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="How many scenes; default and maximum (12) from parameters.yaml",
        examples=[4],
    )
    video_type: Annotated[
        str | None, Field(max_length=200, description="e.g. music video"), CheckedText
    ] = None
    video_characteristics: Annotated[
        str | None, Field(max_length=1000, description="Visual style"), CheckedText
    ] = None
    camera_angle: Annotated[
        str | None, Field(max_length=500, description="Camera perspective"), CheckedText
    ] = None
    output_dir: str | None = Field(
        default=None,
        max_length=200,
        description=(
            "Folder name for this scene set, relative to the outputs' create_scenes folder "
            "(letters, digits, '.', '_', '-', up to 4 levels joined by '/'); default: a fresh id"
        ),
        examples=["robot-video/take-1"],
    )

    @field_validator("output_dir")
    @classmethod
    def _safe_relative_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = PurePosixPath(value).parts
        if value.startswith("/") or not parts or len(parts) > MAX_OUTPUT_DIR_DEPTH:
            raise ValueError("must be a relative folder name of at most 4 levels")
        for part in parts:
            if part in {".", ".."} or not _matches_part(part):
                raise ValueError(f"folder name {part!r} is not allowed")
        return value


def _matches_part(part: str) -> bool:
    return re.fullmatch(OUTPUT_DIR_PART, part) is not None and not part.endswith(".tmp")


class OutputFiles(BaseModel):
    json_file: str = Field(alias="json", description="Absolute path of scenes.json")
    markdown: str = Field(description="Absolute path of scenes.md")

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class CreateScenesMetadata(BaseModel):
    idea: str
    number_of_scenes: int
    parameters_used: dict[str, Any]
    defaults_applied: list[str]
    backend_used: str
    model: str
    scene_set_id: str
    processing_time_seconds: float
    queue_wait_seconds: float


class CreateScenesResponse(BaseModel):
    scenes: list[Scene]
    output_files: OutputFiles
    metadata: CreateScenesMetadata


SCENE_RESPONSE_SCHEMA = SceneResponse.model_json_schema()
"""Built once: the SDK would rebuild it from the model on every call."""


def _resolve_parameters(
    request: CreateScenesRequest, runtime: Runtime
) -> tuple[dict[str, Any], list[str]]:
    """The values actually used, and the names that came from `parameters.yaml`."""
    defaults = runtime.configs.parameters
    used, defaults_applied = apply_defaults(
        request, {name: getattr(defaults, name) for name in OPTIONAL_FIELDS}
    )
    maximum = defaults.max_number_of_scenes
    if used["number_of_scenes"] > maximum:
        raise ValidationFailed.about(
            "number_of_scenes", f"must be at most {maximum}", "less_than_equal"
        )
    return used, defaults_applied


class _SceneSetFolder:
    """The folder one scene set is written to, reserved before any money is spent.

    A named `output_dir` that already holds a scene set, is being written by another
    request, or runs through an existing file is a 409. The reservation is taken before the
    check, so two requests cannot both pass it; it ends in `.tmp`, so a crash leaves
    nothing that startup cleanup does not remove. Blocking filesystem calls: run in a thread.
    """

    def __init__(self, root: Path, scene_set_id: str, output_dir: str | None) -> None:
        self.label = output_dir or scene_set_id
        self.path = root / SCENES_FOLDER / self.label
        self.named = output_dir is not None
        self._reservation = self.path / RESERVATION_NAME

    def reserve(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._reservation.touch(exist_ok=False)
        except FileExistsError as exc:
            raise Conflict(
                f"output_dir {self.label!r} is being written by another request or is not a folder"
            ) from exc
        except NotADirectoryError as exc:
            raise Conflict(f"output_dir {self.label!r} runs through a file") from exc
        if (self.path / "scenes.json").exists():
            self.release()
            raise Conflict(f"output_dir {self.label!r} already holds a scene set")

    def release(self) -> None:
        """Drop the reservation; an unnamed folder left empty by a failure goes too."""
        self._reservation.unlink(missing_ok=True)
        if not self.named and not any(self.path.iterdir()):
            self.path.rmdir()


def _format_prompt(request: CreateScenesRequest, used: dict[str, Any], runtime: Runtime) -> str:
    template = runtime.configs.scene_prompts.scene_generation_prompt
    return template.format(
        idea=request.idea, character_description=request.character_description, **used
    )


def _check_scenes(text: str | None, expected: int) -> list[Scene]:
    """Parse and check the model's JSON; raise `GenerationFailed` when it is unusable."""
    try:
        scenes = SceneResponse.model_validate_json(text or "").scenes
    except ValidationError as exc:
        raise GenerationFailed(
            "The model's answer was not valid scene JSON", backend=GEMINI_BACKEND
        ) from exc
    if len(scenes) != expected:
        raise GenerationFailed(
            f"The model returned {len(scenes)} scenes instead of {expected}", backend=GEMINI_BACKEND
        )
    if any(not scene.description.strip() for scene in scenes):
        raise GenerationFailed(
            "The model returned an empty scene description", backend=GEMINI_BACKEND
        )
    return scenes


def _refusal(response: genai_types.GenerateContentResponse) -> ContentPolicyViolation | None:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = getattr(feedback.block_reason, "value", feedback.block_reason)
        return ContentPolicyViolation(
            f"The prompt was blocked by the provider's safety filter ({reason})",
            backend=GEMINI_BACKEND,
        )
    for candidate in response.candidates or []:
        reason = getattr(candidate.finish_reason, "value", candidate.finish_reason)
        if reason in BLOCKING_FINISH_REASONS:
            return ContentPolicyViolation(
                f"The answer was stopped by the provider's safety filter ({reason})",
                backend=GEMINI_BACKEND,
            )
    return None


async def _scenes_from_gemini(
    prompt: str, expected: int, runtime: Runtime, deadline: Deadline
) -> list[Scene]:
    client = runtime.clients.require_gemini()
    config = genai_types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=SCENE_RESPONSE_SCHEMA
    )
    model = runtime.configs.parameters.model
    failure: GenerationFailed | None = None
    for _ in range(SCENE_ATTEMPTS):
        response = await call_with_retries(
            lambda: client.aio.models.generate_content(model=model, contents=prompt, config=config),
            translate=translate_google_error,
            backend=GEMINI_BACKEND,
            max_attempts=runtime.settings.mv_upstream_max_attempts,
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


def _markdown(request: CreateScenesRequest, scenes: list[Scene], scene_set_id: str) -> str:
    lines = [
        f"# Scenes: {request.idea}",
        "",
        f"Scene set `{scene_set_id}`",
        "",
        f"**Character:** {request.character_description}",
        "",
    ]
    for number, scene in enumerate(scenes, start=1):
        lines += [
            f"## Scene {number}",
            "",
            scene.description,
            "",
            f"*Avoid:* {scene.negative_description}",
            "",
        ]
    return "\n".join(lines)


async def generate_scenes(request: CreateScenesRequest, runtime: Runtime) -> CreateScenesResponse:
    """Write `number_of_scenes` scene prompts for the request and store them.

    Mock mode builds the scenes from the request's own words; live mode asks Gemini (one
    retry on a malformed or short answer, then `GENERATION_FAILED`).
    """
    started = time.monotonic()
    debug.log_scene_request_args(request)
    used, defaults_applied = _resolve_parameters(request, runtime)
    debug.log_scene_defaults_applied({name: used[name] for name in defaults_applied})
    prompt = _format_prompt(request, used, runtime)
    debug.log_scene_prompt(prompt)

    scene_set_id = new_artifact_id()
    folder = _SceneSetFolder(runtime.output_root, scene_set_id, request.output_dir)
    await anyio.to_thread.run_sync(folder.reserve)
    try:
        mock = runtime.settings.mv_mock_mode
        backend = MOCK_BACKEND if mock else GEMINI_BACKEND
        model = MOCK_SCENE_MODEL if mock else runtime.configs.parameters.model
        async with runtime.limiter.slot(f"scenes-{backend}") as ticket:
            if mock:
                await simulate_generation(
                    [request.idea, request.character_description, *map(str, used.values())],
                    runtime.settings.mv_mock_delay_seconds,
                )
                scenes = [
                    Scene(description=description, negative_description=negative)
                    for description, negative in mock_scene_descriptions(
                        idea=request.idea,
                        character_description=request.character_description,
                        camera_angle=used["camera_angle"],
                        number_of_scenes=used["number_of_scenes"],
                    )
                ]
            else:
                deadline = Deadline(runtime.settings.mv_generation_timeout_seconds)
                async with deadline.enforced(GEMINI_BACKEND):
                    scenes = await _scenes_from_gemini(
                        prompt, used["number_of_scenes"], runtime, deadline
                    )
        json_path = folder.path / "scenes.json"
        markdown_path = folder.path / "scenes.md"
        response = CreateScenesResponse(
            scenes=scenes,
            output_files=OutputFiles(json_file=str(json_path), markdown=str(markdown_path)),
            metadata=CreateScenesMetadata(
                idea=request.idea,
                number_of_scenes=len(scenes),
                parameters_used=used,
                defaults_applied=defaults_applied,
                backend_used=backend,
                model=model,
                scene_set_id=scene_set_id,
                processing_time_seconds=round(time.monotonic() - started, 3),
                queue_wait_seconds=ticket.waited_seconds,
            ),
        )
        await write_atomic(markdown_path, _markdown(request, scenes, scene_set_id).encode())
        await write_json_atomic(
            json_path, response.model_dump(mode="json", by_alias=True), exclusive=True
        )
        return response
    finally:
        await anyio.to_thread.run_sync(folder.release)
