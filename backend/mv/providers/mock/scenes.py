"""Mock scene prompts: built from the request's own words, after the mock delay."""

from dataclasses import dataclass
from typing import Any, ClassVar

from backend.mv.providers import Provider
from backend.mv.providers.mock.failures import simulate_generation
from backend.mv.scene_generator import CreateScenesRequest, Scene

SHOT_TYPES = [
    "Wide establishing shot, slow dolly in",
    "Medium tracking shot, handheld",
    "Close-up, shallow depth of field",
    "Low-angle shot, slow push in",
    "Overhead crane shot, descending",
    "Over-the-shoulder shot, gentle pan",
]


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


@dataclass
class MockSceneWriter:
    backend: ClassVar[Provider] = Provider.MOCK
    model: ClassVar[str] = "mock-gemini"

    delay_seconds: float

    async def write(
        self,
        prompt: str,  # noqa: ARG002 - built from the request's words, not the template
        request: CreateScenesRequest,
        used: dict[str, Any],
    ) -> list[Scene]:
        await simulate_generation(
            [request.idea, request.character_description, *map(str, used.values())],
            self.delay_seconds,
        )
        return [
            Scene(description=description, negative_description=negative)
            for description, negative in mock_scene_descriptions(
                idea=request.idea,
                character_description=request.character_description,
                camera_angle=used["camera_angle"],
                number_of_scenes=used["number_of_scenes"],
            )
        ]
