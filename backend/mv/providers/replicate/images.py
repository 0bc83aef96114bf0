"""Character reference images from Imagen 4 on Replicate: one prediction, the file streamed
into the store."""

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, ClassVar

import replicate

from backend.mv import debug
from backend.mv.image_generator import GenerateCharacterReferenceRequest
from backend.mv.params import ParameterPlan, plan_parameters
from backend.mv.providers import JobPolicy, Provider, require_client
from backend.mv.providers.downloads import Downloader
from backend.mv.providers.replicate.predictions import predict_into_store
from backend.mv.providers.tracking import UpstreamTracker
from backend.mv.storage.base import ArtifactStore


@dataclass
class ReplicateImageDrawer:
    client: replicate.Client | None
    downloader: Downloader
    model: str
    model_inputs: Collection[str]
    policy: JobPolicy
    backend: ClassVar[Provider] = Provider.REPLICATE

    def plan(self, chosen: dict[str, Any], defaults_applied: list[str]) -> ParameterPlan:
        return plan_parameters(
            chosen,
            self.model_inputs,
            defaults_applied,
            lambda name: f"{self.model} has no {name} input",
        )

    async def draw(
        self,
        request: GenerateCharacterReferenceRequest,  # noqa: ARG002 - the prompt holds its words
        prompt: str,
        plan: ParameterPlan,
        store: ArtifactStore,
        key: str,
        tracker: UpstreamTracker,
    ) -> None:
        await predict_into_store(
            require_client(self.client, Provider.REPLICATE, "REPLICATE_API_TOKEN"),
            self.downloader,
            model=self.model,
            model_input={"prompt": prompt, **plan.used},
            policy=self.policy,
            store=store,
            key=key,
            log_response=debug.log_replicate_response,
            tracker=tracker,
        )
