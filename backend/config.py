"""Service settings, read once from the environment and a `.env` at the repository root."""

from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
GIB = 1024 * MIB


class Settings(BaseSettings):
    """Every knob the service has; DESIGN.md's settings table is the reference.

    Names match the environment variables exactly (case-insensitive). Keys stay here and are
    handed to the SDK clients explicitly: nothing is copied into `os.environ`.
    """

    model_config = SettingsConfigDict(
        env_file=REPO_ROOT / ".env", env_file_encoding="utf-8", extra="ignore"
    )

    gemini_api_key: str = ""
    replicate_api_token: str = ""
    mv_debug_mode: bool = False
    mv_mock_mode: bool = False
    mv_mock_delay_seconds: float = Field(default=1.0, ge=0)
    mv_output_dir: Path = REPO_ROOT / "backend" / "mv" / "outputs"
    mv_generation_timeout_seconds: float = Field(default=600.0, gt=0)
    mv_poll_interval_seconds: float = Field(default=2.0, gt=0)
    mv_upstream_max_attempts: int = Field(default=4, ge=1)
    mv_max_request_bytes: int = Field(default=16 * MIB, gt=0)
    mv_max_header_bytes: int = Field(default=16 * 1024, gt=0)
    mv_shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    mv_api_keys: str = ""
    mv_max_concurrent_generations: int = Field(default=32, ge=1)
    mv_max_queued_generations: int = Field(default=256, ge=0)
    mv_max_reference_image_bytes: int = Field(default=10 * MIB, gt=0)
    mv_min_free_bytes: int = Field(default=GIB, ge=0)
    mv_max_audio_bytes: int = Field(default=50 * MIB, gt=0)
    mv_max_audio_seconds: float = Field(default=600.0, gt=0)
    mv_max_concurrent_renders: int = Field(default=1, ge=1)
    mv_cors_origins: str = "*"
    replicate_base_url: str = "https://api.replicate.com"
    google_gemini_base_url: str = "https://generativelanguage.googleapis.com"

    @field_validator("mv_output_dir")
    @classmethod
    def _absolute_output_dir(cls, value: Path) -> Path:
        """Relative output roots are taken from the repository root, wherever the server starts."""
        return value if value.is_absolute() else (REPO_ROOT / value).resolve()

    @cached_property
    def api_keys(self) -> frozenset[str]:
        """The accepted client keys; empty means authentication is off."""
        return frozenset(key.strip() for key in self.mv_api_keys.split(",") if key.strip())

    @cached_property
    def provider_key_fields(self) -> dict[str, str]:
        """Each provider's key by provider name: every `<provider>_api_key` or
        `<provider>_api_token` field, so a new provider's key is reported and scrubbed
        without being listed anywhere else."""
        return {
            name.rsplit("_api_", 1)[0]: getattr(self, name)
            for name in type(self).model_fields
            if name.endswith(("_api_key", "_api_token"))
        }

    @cached_property
    def provider_keys(self) -> list[str]:
        """The provider keys that are set, to scrub from anything a client or log sees."""
        return [key for key in self.provider_key_fields.values() if key]

    @cached_property
    def secrets(self) -> list[str]:
        """What no log line or answer may show: the provider keys and the client API keys."""
        return [*self.provider_keys, *self.api_keys]

    @cached_property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.mv_cors_origins.split(",") if origin.strip()]
