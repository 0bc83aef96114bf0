"""Mock character references: a real PNG or JPEG of the asked shape, after the mock delay."""

from dataclasses import dataclass
from typing import Any, ClassVar

from backend.mv.image_generator import GenerateCharacterReferenceRequest
from backend.mv.params import ParameterPlan
from backend.mv.providers import Provider
from backend.mv.providers.mock.failures import simulate_generation
from backend.mv.providers.mock.media import write_mock_image
from backend.mv.providers.tracking import UpstreamTracker
from backend.mv.storage.base import ArtifactStore, make_and_store


@dataclass
class MockImageDrawer:
    backend: ClassVar[Provider] = Provider.MOCK
    model: ClassVar[str] = "mock-imagen"

    delay_seconds: float

    def plan(
        self,
        chosen: dict[str, Any],
        defaults_applied: list[str],  # noqa: ARG002 - the mock takes every parameter
    ) -> ParameterPlan:
        return ParameterPlan(used=chosen, not_applied={})

    async def draw(
        self,
        request: GenerateCharacterReferenceRequest,
        prompt: str,  # noqa: ARG002 - the label is the client's own description
        plan: ParameterPlan,
        store: ArtifactStore,
        key: str,
        tracker: UpstreamTracker,  # noqa: ARG002 - no provider job to record
    ) -> None:
        await simulate_generation(
            [request.character_description, request.negative_prompt or ""], self.delay_seconds
        )
        await make_and_store(
            store,
            key,
            lambda path: write_mock_image(
                path,
                aspect_ratio=plan.used["aspect_ratio"],
                image_format=plan.used["output_format"],
                label=request.character_description,
            ),
            backend=self.backend,
        )
