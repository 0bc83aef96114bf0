"""What every stored artifact reports about how it was made."""

from typing import Any

from pydantic import BaseModel, Field


class GenerationMetadata(BaseModel):
    backend_used: str = Field(description="replicate, gemini or mock")
    model_used: str
    parameters_used: dict[str, Any] = Field(description="The values that reached the provider")
    defaults_applied: list[str] = Field(description="Which of them came from the YAML configs")
    parameters_not_applied: dict[str, str] = Field(
        description="Requested parameters the backend cannot take, with the reason"
    )
    generation_timestamp: str
    processing_time_seconds: float
    queue_wait_seconds: float = Field(description="Time spent waiting for a concurrency slot")
