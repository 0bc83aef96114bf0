"""v1: scene prompts for a video idea, written by Gemini as structured JSON.

The prompt template and defaults come from `parameters.yaml` and `scene_prompts.yaml`; a
`SceneWriter` (Gemini live, the mock provider in mock mode) returns checked scenes (exact
count, no empty description) before anything is stored. Each scene set gets its own folder,
so concurrent requests never overwrite each other.
"""

import logging
import re
import time
from contextlib import suppress
from pathlib import PurePosixPath
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, Field, field_validator

from backend.jobs.webhooks.targets import WebhookFields
from backend.mv import debug
from backend.mv.configuration import SceneParameters
from backend.mv.errors import Conflict, ValidationFailed
from backend.mv.limiter import Slots
from backend.mv.params import CheckedText, apply_defaults
from backend.mv.providers import Provider
from backend.mv.providers.tracking import UNTRACKED, UpstreamTracker
from backend.mv.storage.base import ArtifactStore, keep_paid_result
from backend.mv.storage.identity import new_artifact_id

SCENES_FOLDER = "create_scenes"
RESERVATION_NAME = ".scene_set.reserved"
OUTPUT_DIR_PART = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_OUTPUT_DIR_DEPTH = 4
OPTIONAL_FIELDS = (
    "character_characteristics",
    "number_of_scenes",
    "video_type",
    "video_characteristics",
    "camera_angle",
)

logger = logging.getLogger(__name__)


class Scene(BaseModel):
    description: str = Field(description="Self-contained Veo prompt for one clip")
    negative_description: str = Field(description="What must not appear in the clip")


class CreateScenesRequest(WebhookFields):
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
        Field(
            max_length=1000,
            description="Traits; default `character_characteristics` in parameters.yaml",
        ),
        CheckedText,
    ] = None
    number_of_scenes: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=1000,
        description=(
            "How many scenes; default `number_of_scenes`, at most `max_number_of_scenes` "
            "(both in parameters.yaml)"
        ),
        examples=[4],
    )
    video_type: Annotated[
        str | None,
        Field(
            max_length=200, description="e.g. music video; default `video_type` in parameters.yaml"
        ),
        CheckedText,
    ] = None
    video_characteristics: Annotated[
        str | None,
        Field(
            max_length=1000,
            description="Visual style; default `video_characteristics` in parameters.yaml",
        ),
        CheckedText,
    ] = None
    camera_angle: Annotated[
        str | None,
        Field(
            max_length=500,
            description="Camera perspective; default `camera_angle` in parameters.yaml",
        ),
        CheckedText,
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
    job_id: str | None = Field(
        default=None, description="The job that made it (also the answer's X-Job-ID header)"
    )


class CreateScenesResponse(BaseModel):
    scenes: list[Scene]
    output_files: OutputFiles
    metadata: CreateScenesMetadata


class SceneWriter(Protocol):
    """Who writes the scenes: Gemini live, the mock provider in mock mode."""

    backend: Provider
    model: str

    async def write(
        self, prompt: str, request: CreateScenesRequest, used: dict[str, Any]
    ) -> list[Scene]:
        """Exactly `used["number_of_scenes"]` scenes for the formatted `prompt`."""
        ...


def _resolve_parameters(
    request: CreateScenesRequest, defaults: SceneParameters
) -> tuple[dict[str, Any], list[str]]:
    """The values actually used, and the names that came from `parameters.yaml`."""
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
    request, or runs through an existing file is a 409. The reservation (a store claim) is
    taken before the check, so two requests cannot both pass it; a crash loses it at the
    next startup.
    """

    def __init__(self, store: ArtifactStore, scene_set_id: str, output_dir: str | None) -> None:
        self.store = store
        self.label = output_dir or scene_set_id
        self.prefix = f"{SCENES_FOLDER}/{self.label}"
        self.named = output_dir is not None
        self._reservation = f"{self.prefix}/{RESERVATION_NAME}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    async def reserve(self) -> None:
        try:
            await self.store.claim(self._reservation)
        except FileExistsError as exc:
            raise Conflict(
                f"output_dir {self.label!r} is being written by another request or is not a folder"
            ) from exc
        except NotADirectoryError as exc:
            raise Conflict(f"output_dir {self.label!r} runs through a file") from exc
        if await self.store.size(self.key("scenes.json")) is not None:
            await self.release()
            raise Conflict(f"output_dir {self.label!r} already holds a scene set")

    async def release(self) -> None:
        """Drop the reservation; an unnamed folder left empty by a failure goes too (one
        already removed from under us is nothing to drop)."""
        await self.store.release(self._reservation)
        if not self.named:
            with suppress(FileNotFoundError):
                await self.store.remove_folder_if_empty(self.prefix)


def _format_prompt(request: CreateScenesRequest, used: dict[str, Any], template: str) -> str:
    return template.format(
        idea=request.idea, character_description=request.character_description, **used
    )


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


def check_scenes_request(
    request: CreateScenesRequest, defaults: SceneParameters, prompt_template: str
) -> None:
    """What `generate_scenes` refuses before any wait (400)."""
    used, _ = _resolve_parameters(request, defaults)
    _format_prompt(request, used, prompt_template)


async def generate_scenes(
    request: CreateScenesRequest,
    *,
    writer: SceneWriter,
    store: ArtifactStore,
    limiter: Slots,
    defaults: SceneParameters,
    prompt_template: str,
    min_free_bytes: int,
    tracker: UpstreamTracker = UNTRACKED,
    scene_set_id: str | None = None,
) -> CreateScenesResponse:
    """Write `number_of_scenes` scene prompts for the request and store them.

    `defaults` (`parameters.yaml`) fill what the request left out; `prompt_template`
    (`scene_prompts.yaml`) frames the client's words for the writer. The store must be
    writable with `min_free_bytes` free before the scene folder is reserved (the first
    write) and the writer is paid (else 507); once the writer has answered, files that
    cannot be written are logged, not answered with an error.
    """
    started = time.monotonic()
    debug.log_scene_request_args(request)
    used, defaults_applied = _resolve_parameters(request, defaults)
    debug.log_scene_defaults_applied({name: used[name] for name in defaults_applied})
    prompt = _format_prompt(request, used, prompt_template)
    debug.log_scene_prompt(prompt)

    scene_set_id = scene_set_id or new_artifact_id()
    folder = _SceneSetFolder(store, scene_set_id, request.output_dir)
    stored = await store.read_json(folder.key("scenes.json"))
    if stored is not None and stored.get("metadata", {}).get("scene_set_id") == scene_set_id:
        logger.info(
            "scene set %s was stored by an earlier attempt; answering from it", scene_set_id
        )
        return CreateScenesResponse.model_validate(stored)
    await store.check_writable(min_free_bytes)
    await folder.reserve()
    try:
        async with limiter.slot(f"scenes-{writer.backend}") as ticket:
            scenes = await writer.write(prompt, request, used)
        json_key = folder.key("scenes.json")
        markdown_key = folder.key("scenes.md")
        response = CreateScenesResponse(
            scenes=scenes,
            output_files=OutputFiles(
                json_file=store.uri(json_key), markdown=store.uri(markdown_key)
            ),
            metadata=CreateScenesMetadata(
                idea=request.idea,
                number_of_scenes=len(scenes),
                parameters_used=used,
                defaults_applied=defaults_applied,
                backend_used=writer.backend,
                model=writer.model,
                scene_set_id=scene_set_id,
                processing_time_seconds=round(time.monotonic() - started, 3),
                queue_wait_seconds=ticket.waited_seconds,
                job_id=tracker.job_id,
            ),
        )
        markdown = _markdown(request, scenes, scene_set_id).encode()
        await keep_paid_result(
            lambda: store.put_bytes(markdown_key, markdown, replace=True),
            what=f"scenes.md of scene set {scene_set_id}",
        )
        # Replacing is safe: the reservation keeps every other request out of the folder.
        await keep_paid_result(
            lambda: store.put_json(
                json_key, response.model_dump(mode="json", by_alias=True), replace=True
            ),
            what=f"scenes.json of scene set {scene_set_id}",
        )
        return response
    finally:
        await folder.release()
