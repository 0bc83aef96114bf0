"""v2: a character reference image from Imagen 4 on Replicate (or the mock provider).

Values the model cannot take are refused before any money is spent; the allowed lists live
in `image_params.yaml`. The image is stored as `character_ref_<UTC timestamp>_<8 hex>.<ext>`
beside a `<image_id>.json` sidecar, so `image_id` finds it again and two requests in the
same second never collide.
"""

import base64
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import anyio
from pydantic import BaseModel, Field

from backend.mv import debug
from backend.mv.downloads import download_output
from backend.mv.errors import GenerationFailed, ValidationFailed
from backend.mv.fields import CheckedText, apply_defaults, choice_problems
from backend.mv.images import decoded_format
from backend.mv.metadata import (
    GenerationMetadata,
    ParameterPlan,
    generation_fields,
    plan_parameters,
)
from backend.mv.mock_media import write_mock_image
from backend.mv.mock_provider import MOCK_BACKEND, MOCK_IMAGE_MODEL, simulate_generation
from backend.mv.providers import REPLICATE_BACKEND
from backend.mv.references import CONTENT_TYPES, reference_folder
from backend.mv.replicate_runner import run_prediction
from backend.mv.runtime import ClientGone, Runtime, client_left
from backend.mv.storage import (
    new_artifact_id,
    sha256_of_bytes,
    staged_path,
    write_json_atomic,
)
from backend.mv.upstream import Deadline

CHOICE_FIELDS = ("aspect_ratio", "safety_filter_level", "person_generation", "output_format")
IMAGE_URL_PREFIX = "/api/mv/get_character_reference/"


class GenerateCharacterReferenceRequest(BaseModel):
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
        default=None, max_length=16, description="1:1, 9:16, 16:9, 3:4 or 4:3", examples=["1:1"]
    )
    safety_filter_level: str | None = Field(
        default=None,
        max_length=64,
        description="block_low_and_above, block_medium_and_above or block_only_high",
    )
    person_generation: str | None = Field(
        default=None, max_length=64, description="dont_allow, allow_adult or allow_all"
    )
    output_format: str | None = Field(
        default=None, max_length=8, description="png or jpg", examples=["png"]
    )
    negative_prompt: Annotated[
        str | None, Field(max_length=1000, description="What the image must not show"), CheckedText
    ] = None
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="For reproducibility")


class CharacterReferenceMetadata(GenerationMetadata):
    character_description: str


class GenerateCharacterReferenceResponse(BaseModel):
    image_id: str = Field(description="UUID; use it as reference_image_id for generate_video")
    image_url: str = Field(description="Where GET serves the stored image")
    image_base64: str
    output_file: str = Field(description="Absolute path of the stored image")
    metadata: CharacterReferenceMetadata


def _resolve_choices(
    request: GenerateCharacterReferenceRequest, runtime: Runtime
) -> tuple[dict[str, Any], list[str]]:
    """Apply defaults and check every choice against its allowed list, all errors at once."""
    params = runtime.configs.image_params
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


def _check_image(data: bytes, expected_format: str) -> str:
    """The image's sha256, once it is known to be a readable image of the asked format.
    CPU-bound: runs in a worker thread."""
    actual = decoded_format(data)
    if actual is None:
        raise GenerationFailed(
            "The provider's output is not a readable image", backend=REPLICATE_BACKEND
        )
    if actual != {"png": "PNG", "jpg": "JPEG"}[expected_format]:
        raise GenerationFailed(
            f"The provider returned {actual} instead of {expected_format}",
            backend=REPLICATE_BACKEND,
        )
    return sha256_of_bytes(data)


def image_file_name(image_id: str, output_format: str, now: datetime) -> str:
    return f"character_ref_{now:%Y%m%d_%H%M%S}_{image_id.replace('-', '')[:8]}.{output_format}"


async def _generate_with_replicate(
    prompt: str, used: dict[str, Any], destination: Path, runtime: Runtime
) -> None:
    client = runtime.clients.require_replicate()
    settings = runtime.settings
    deadline = Deadline(settings.mv_generation_timeout_seconds)
    async with deadline.enforced(REPLICATE_BACKEND):
        prediction, output_url = await run_prediction(
            client,
            model=runtime.configs.image_params.model,
            model_input={"prompt": prompt, **used},
            deadline=deadline,
            poll_interval_seconds=settings.mv_poll_interval_seconds,
            max_attempts=settings.mv_upstream_max_attempts,
            backend=REPLICATE_BACKEND,
        )
        debug.log_replicate_response(prediction)
        await download_output(
            runtime, output_url, destination, backend=REPLICATE_BACKEND, deadline=deadline
        )


async def generate_character_reference_image(
    request: GenerateCharacterReferenceRequest,
    runtime: Runtime,
    *,
    client_gone: ClientGone | None = None,
) -> GenerateCharacterReferenceResponse:
    """Draw, check and store the image; stored even if the client has gone meanwhile."""
    started = time.monotonic()
    debug.log_image_request_args(request)
    chosen, defaults_applied = _resolve_choices(request, runtime)
    debug.log_image_defaults_applied({name: chosen[name] for name in defaults_applied})
    prompt = runtime.configs.image_prompts.character_reference_prompt.format(
        character_description=request.character_description
    )
    debug.log_image_prompt(prompt)

    mock = runtime.settings.mv_mock_mode
    backend = MOCK_BACKEND if mock else REPLICATE_BACKEND
    model = MOCK_IMAGE_MODEL if mock else runtime.configs.image_params.model
    plan = (
        ParameterPlan(used=chosen, not_applied={})
        if mock
        else plan_parameters(
            chosen,
            runtime.configs.image_params.image_model_inputs,
            defaults_applied,
            lambda name: f"{model} has no {name} input",
        )
    )
    output_format = chosen["output_format"]
    image_id = new_artifact_id()
    folder = reference_folder(runtime.output_root)
    await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
    image_path = folder / image_file_name(image_id, output_format, datetime.now(UTC))

    async with runtime.limiter.slot(f"images-{backend}") as ticket:
        if mock:
            await simulate_generation(
                [request.character_description, request.negative_prompt or ""],
                runtime.settings.mv_mock_delay_seconds,
            )
            async with staged_path(image_path) as temp:
                await write_mock_image(
                    temp,
                    aspect_ratio=chosen["aspect_ratio"],
                    image_format=output_format,
                    label=request.character_description,
                )
        else:
            await _generate_with_replicate(prompt, plan.used, image_path, runtime)

    image_bytes = await anyio.Path(image_path).read_bytes()
    try:
        image_sha256 = await anyio.to_thread.run_sync(_check_image, image_bytes, output_format)
    except GenerationFailed:
        await anyio.Path(image_path).unlink(missing_ok=True)
        raise
    metadata = CharacterReferenceMetadata(
        character_description=request.character_description,
        **generation_fields(
            backend=backend,
            model=model,
            plan=plan,
            defaults_applied=defaults_applied,
            started=started,
            queue_wait_seconds=ticket.waited_seconds,
        ),
    )
    await write_json_atomic(
        folder / f"{image_id}.json",
        {
            "image_id": image_id,
            "file_name": image_path.name,
            "content_type": CONTENT_TYPES[output_format],
            "size_bytes": len(image_bytes),
            "sha256": image_sha256,
            "created_at": metadata.generation_timestamp,
            "prompt": prompt,
            "client_disconnected": await client_left(client_gone),
            **metadata.model_dump(mode="json"),
        },
        exclusive=True,
    )
    return GenerateCharacterReferenceResponse(
        image_id=image_id,
        image_url=f"{IMAGE_URL_PREFIX}{image_id}",
        image_base64=await anyio.to_thread.run_sync(
            lambda: base64.b64encode(image_bytes).decode("ascii")
        ),
        output_file=str(image_path),
        metadata=metadata,
    )
