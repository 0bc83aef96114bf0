"""v2: a character reference image from Imagen 4 on Replicate (or the mock provider).

Values the model cannot take are refused before any money is spent; the allowed lists live
in `image_params.yaml`. The image is stored as `character_ref_<UTC timestamp>_<8 hex>.<ext>`
beside a `<image_id>.json` sidecar, so `image_id` finds it again and two requests in the
same second never collide.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, Field

from backend.jobs.webhooks.targets import WebhookFields
from backend.mv import base64_text, debug
from backend.mv.configuration import ImageParams
from backend.mv.errors import GenerationFailed, NotFound, ValidationFailed
from backend.mv.image_check import decoded_format
from backend.mv.limiter import Slots
from backend.mv.params import (
    CheckedText,
    GenerationMetadata,
    ParameterPlan,
    SidecarFields,
    apply_defaults,
    choice_problems,
    generation_fields,
)
from backend.mv.providers import Provider
from backend.mv.providers.tracking import UNTRACKED, UpstreamTracker
from backend.mv.storage.base import ArtifactStore, find_sidecar, keep_paid_result
from backend.mv.storage.files import sha256_of_bytes
from backend.mv.storage.identity import new_artifact_id
from backend.mv.thread_pools import DECODING

CHOICE_FIELDS = ("aspect_ratio", "safety_filter_level", "person_generation", "output_format")
REFERENCE_FOLDER = "character_reference"
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg"}

logger = logging.getLogger(__name__)


class GenerateCharacterReferenceRequest(WebhookFields):
    character_description: Annotated[
        str,
        Field(
            max_length=2000,
            description="What the character looks like; reaches the model verbatim",
            examples=["Silver metallic humanoid robot with a red shield"],
        ),
        CheckedText,
    ]
    aspect_ratio: str | None = Field(
        default=None,
        max_length=16,
        description="Default `aspect_ratio`, allowed `allowed.aspect_ratio` (image_params.yaml)",
        examples=["1:1"],
    )
    safety_filter_level: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Default `safety_filter_level`, allowed `allowed.safety_filter_level` "
            "(image_params.yaml)"
        ),
    )
    person_generation: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Default `person_generation`, allowed `allowed.person_generation` (image_params.yaml)"
        ),
    )
    output_format: str | None = Field(
        default=None,
        max_length=8,
        description="Default `output_format`, allowed `allowed.output_format` (image_params.yaml)",
        examples=["png"],
    )
    negative_prompt: Annotated[
        str | None, Field(max_length=1000, description="What the image must not show"), CheckedText
    ] = None
    seed: int | None = Field(
        default=None, ge=0, le=2**31 - 1, strict=True, description="For reproducibility"
    )


class CharacterReferenceMetadata(GenerationMetadata):
    character_description: str


class GenerateCharacterReferenceResponse(BaseModel):
    image_id: str = Field(description="UUID; use it as reference_image_id for generate_video")
    image_url: str = Field(description="Where GET serves the stored image")
    image_base64: str
    output_file: str = Field(description="Absolute path of the stored image")
    metadata: CharacterReferenceMetadata


class ImageSidecar(SidecarFields, CharacterReferenceMetadata):
    image_id: str
    content_type: str
    size_bytes: int
    sha256: str
    prompt: str


class ImageDrawer(Protocol):
    """Who draws the image: Imagen on Replicate live, the mock provider in mock mode."""

    backend: Provider
    model: str

    def plan(self, chosen: dict[str, Any], defaults_applied: list[str]) -> ParameterPlan:
        """Which of the chosen values reach the model, and why the others do not."""
        ...

    async def draw(
        self,
        request: GenerateCharacterReferenceRequest,
        prompt: str,
        plan: ParameterPlan,
        store: ArtifactStore,
        key: str,
        tracker: UpstreamTracker,
    ) -> None:
        """Make the image and store it under `key`, in the format `plan.used` names; the
        provider job is reported to `tracker` as soon as it exists (or resumed from it)."""
        ...


def _resolve_choices(
    request: GenerateCharacterReferenceRequest, params: ImageParams
) -> tuple[dict[str, Any], list[str]]:
    """Apply defaults and check every choice against its allowed list, all errors at once."""
    chosen, defaults_applied = apply_defaults(
        request, {name: getattr(params, name) for name in CHOICE_FIELDS}
    )
    allowed = {name: getattr(params.allowed, name) for name in CHOICE_FIELDS}
    if problems := choice_problems(chosen, allowed):
        raise ValidationFailed.from_problems(problems)
    for name in ("negative_prompt", "seed"):
        if getattr(request, name) is not None:
            chosen[name] = getattr(request, name)
    return chosen, defaults_applied


def _check_image(data: bytes, expected_format: str, backend: str) -> str:
    """The image's sha256, once it is known to be a readable image of the asked format.
    CPU-bound: runs in a worker thread."""
    actual = decoded_format(data)
    if actual is None:
        raise GenerationFailed("The provider's output is not a readable image", backend=backend)
    if actual != {"png": "PNG", "jpg": "JPEG"}[expected_format]:
        raise GenerationFailed(
            f"The provider returned {actual} instead of {expected_format}", backend=backend
        )
    return sha256_of_bytes(data)


def image_file_name(image_id: str, output_format: str, now: datetime) -> str:
    return f"character_ref_{now:%Y%m%d_%H%M%S}_{image_id.replace('-', '')[:8]}.{output_format}"


def check_image_request(request: GenerateCharacterReferenceRequest, params: ImageParams) -> None:
    """What `generate_character_reference_image` refuses before any wait (400)."""
    _resolve_choices(request, params)


async def generate_character_reference_image(
    request: GenerateCharacterReferenceRequest,
    *,
    drawer: ImageDrawer,
    store: ArtifactStore,
    limiter: Slots,
    params: ImageParams,
    prompt_template: str,
    min_free_bytes: int,
    image_url_for: Callable[[str], str],
    tracker: UpstreamTracker = UNTRACKED,
    image_id: str | None = None,
) -> GenerateCharacterReferenceResponse:
    """Draw, check and store the image; stored even if the client has gone meanwhile. An
    image the check refuses is removed with the failure (`publishing`).

    `params` (`image_params.yaml`) give defaults and allowed values, `prompt_template`
    (`image_prompts.yaml`) frames the description, `image_url_for(image_id)` is where the
    image will be served. The store must be writable with `min_free_bytes` free before the
    drawer is called (else 507); once the image is stored, a sidecar that cannot be written
    is logged, not answered with an error. A job passes its `tracker` and the `image_id`
    it was given, so an attempt after a crash resumes the same provider job into the same
    id.
    """
    if image_id is not None and (stored := await _stored_answer(image_id, store, image_url_for)):
        return stored
    started = time.monotonic()
    debug.log_image_request_args(request)
    chosen, defaults_applied = _resolve_choices(request, params)
    debug.log_image_defaults_applied({name: chosen[name] for name in defaults_applied})
    prompt = prompt_template.format(character_description=request.character_description)
    debug.log_image_prompt(prompt)

    plan = drawer.plan(chosen, defaults_applied)
    output_format = chosen["output_format"]
    image_id = image_id or new_artifact_id()
    file_name = image_file_name(image_id, output_format, datetime.now(UTC))
    key = f"{REFERENCE_FOLDER}/{file_name}"

    sidecar_key = f"{REFERENCE_FOLDER}/{image_id}.json"
    async with store.publishing(key, sidecar=sidecar_key):
        async with limiter.slot(f"images-{drawer.backend}") as ticket:
            await store.check_writable(min_free_bytes)
            await drawer.draw(request, prompt, plan, store, key, tracker)

        image_bytes = await store.read_bytes(key) or b""
        image_sha256 = await DECODING.run(_check_image, image_bytes, output_format, drawer.backend)
        metadata = CharacterReferenceMetadata(
            character_description=request.character_description,
            **generation_fields(
                backend=drawer.backend,
                model=drawer.model,
                plan=plan,
                defaults_applied=defaults_applied,
                started=started,
                queue_wait_seconds=ticket.waited_seconds,
                job_id=tracker.job_id,
            ),
        )
        sidecar = ImageSidecar(
            image_id=image_id,
            file_name=file_name,
            content_type=CONTENT_TYPES[output_format],
            size_bytes=len(image_bytes),
            sha256=image_sha256,
            created_at=metadata.generation_timestamp,
            prompt=prompt,
            **metadata.model_dump(),
        )
        await keep_paid_result(
            lambda: store.put_json(sidecar_key, sidecar.model_dump(mode="json"), replace=True),
            what=f"the sidecar of character reference {image_id}",
        )
    return GenerateCharacterReferenceResponse(
        image_id=image_id,
        image_url=image_url_for(image_id),
        image_base64=await DECODING.run(base64_text.encode, image_bytes),
        output_file=store.uri(key),
        metadata=metadata,
    )


async def _stored_answer(
    image_id: str, store: ArtifactStore, image_url_for: Callable[[str], str]
) -> GenerateCharacterReferenceResponse | None:
    """The answer for an image an earlier attempt of the same job stored whole before a
    crash cut the attempt off: given again, not paid again."""
    sidecar = await store.read_json(f"{REFERENCE_FOLDER}/{image_id}.json")
    if sidecar is None:
        return None
    key = f"{REFERENCE_FOLDER}/{PurePosixPath(str(sidecar.get('file_name', ''))).name}"
    image_bytes = await store.read_bytes(key)
    if image_bytes is None:
        return None
    logger.info("image %s was stored by an earlier attempt; answering from it", image_id)
    return GenerateCharacterReferenceResponse(
        image_id=image_id,
        image_url=image_url_for(image_id),
        image_base64=await DECODING.run(base64_text.encode, image_bytes),
        output_file=store.uri(key),
        metadata=CharacterReferenceMetadata.model_validate(sidecar),
    )


@dataclass(frozen=True)
class StoredReference:
    image_id: str
    key: str
    content_type: str
    sha256: str | None


async def find_reference(raw_id: str, store: ArtifactStore) -> StoredReference:
    """The stored image for an id; a malformed id never reaches the store (404)."""
    image_id, sidecar = await find_sidecar(store, REFERENCE_FOLDER, raw_id, "character reference")
    name = PurePosixPath(str(sidecar.get("file_name", ""))).name
    key = f"{REFERENCE_FOLDER}/{name}"
    if not name or await store.size(key) is None:
        raise NotFound(f"The image for character reference {image_id} is gone")
    content_type = CONTENT_TYPES.get(
        PurePosixPath(name).suffix.lstrip("."), "application/octet-stream"
    )
    return StoredReference(image_id, key, content_type, sidecar.get("sha256"))
