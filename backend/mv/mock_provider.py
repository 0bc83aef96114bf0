"""The local mock provider: the whole flow with no keys and no cost.

It answers with real files in the live response shapes, marked `backend_used: "mock"` and
a mock `model_used`, so no client can take mock output for real output. A marker in the
request's text simulates a provider failure with the same error the live backends give.
"""

import asyncio

from backend.mv.errors import (
    ContentPolicyViolation,
    GenerationFailed,
    GenerationTimeout,
    MVError,
    RateLimited,
)

MOCK_BACKEND = "mock"
MOCK_SCENE_MODEL = "mock-gemini"
MOCK_IMAGE_MODEL = "mock-imagen"
MOCK_VIDEO_MODEL = "mock-veo"
MOCK_RETRY_AFTER_SECONDS = 5

FAILURE_MARKERS: dict[str, type[MVError]] = {
    "[mock:content_policy]": ContentPolicyViolation,
    "[mock:rate_limit]": RateLimited,
    "[mock:failed]": GenerationFailed,
    "[mock:timeout]": GenerationTimeout,
}

SHOT_TYPES = [
    "Wide establishing shot, slow dolly in",
    "Medium tracking shot, handheld",
    "Close-up, shallow depth of field",
    "Low-angle shot, slow push in",
    "Overhead crane shot, descending",
    "Over-the-shoulder shot, gentle pan",
]


def _simulated_failure(texts: list[str]) -> MVError | None:
    joined = "\n".join(texts)
    for marker, error_class in FAILURE_MARKERS.items():
        if marker in joined:
            message = f"Simulated by the mock provider ({marker})"
            if error_class is RateLimited:
                return RateLimited(
                    message, backend=MOCK_BACKEND, retry_after_seconds=MOCK_RETRY_AFTER_SECONDS
                )
            return error_class(message, backend=MOCK_BACKEND)
    return None


async def simulate_generation(texts: list[str], delay_seconds: float) -> None:
    """Wait like a provider would (without blocking the loop), then fail if a marker asks."""
    await asyncio.sleep(delay_seconds)
    if failure := _simulated_failure(texts):
        raise failure


def mock_scene_descriptions(
    *, idea: str, character_description: str, camera_angle: str, number_of_scenes: int
) -> list[tuple[str, str]]:
    """(description, negative_description) pairs built from the request's own words."""
    scenes = []
    for index in range(number_of_scenes):
        shot = SHOT_TYPES[index % len(SHOT_TYPES)]
        description = (
            f"{shot}. Scene {index + 1} of {number_of_scenes}: {character_description} "
            f'carries the story of "{idea}" forward, framed as {camera_angle}. '
            "Warm practical lights, ambient music swelling under the action."
        )
        scenes.append((description, "text overlays, watermarks, extra characters, blur"))
    return scenes
