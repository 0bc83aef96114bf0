"""Service settings, read once from the environment and a `.env` at the repository root."""

from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.jobs.webhooks.signing import SECRET_PREFIX, check_webhook_secret

REPO_ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
GIB = 1024 * MIB


class Settings(BaseSettings):
    """Every knob the service has; DESIGN.md's settings table is the reference.

    Names match the environment variables exactly (case-insensitive). Keys stay here and are
    handed to the SDK clients explicitly: nothing is copied into `os.environ`.
    """

    model_config = SettingsConfigDict(
        env_file=REPO_ROOT / ".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A bad value's error must not print the value: some of these are secrets.
        hide_input_in_errors=True,
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
    mv_database_url: str = ""
    """Empty: a SQLite file `mv.sqlite3` in `mv_output_dir`."""
    mv_job_retention_hours: float = Field(default=168.0, gt=0)
    mv_instance_id: str = ""
    """Empty: the host name."""
    mv_webhook_secret: str = ""
    mv_webhook_allow_private: bool = False
    mv_webhook_max_attempts: int = Field(default=9, ge=1)
    mv_webhook_retry_base_seconds: float = Field(default=5.0, ge=0)
    replicate_base_url: str = "https://api.replicate.com"
    google_gemini_base_url: str = "https://generativelanguage.googleapis.com"

    @field_validator("mv_output_dir")
    @classmethod
    def _absolute_output_dir(cls, value: Path) -> Path:
        """Relative output roots are taken from the repository root, wherever the server starts."""
        return value if value.is_absolute() else (REPO_ROOT / value).resolve()

    @field_validator("mv_webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: str) -> str:
        """A secret that is set must be one receivers can verify with: stop at startup."""
        if value:
            try:
                check_webhook_secret(value)
            except ValueError as exc:
                raise ValueError(f"MV_WEBHOOK_SECRET: {exc}") from None
        return value

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
        """What no log line or answer may show: the provider keys, the client API keys and
        the webhook secret (its key part too, which is what a careless log would print)."""
        webhook = self.mv_webhook_secret
        webhook_parts = [webhook, webhook.removeprefix(SECRET_PREFIX)] if webhook else []
        return [*self.provider_keys, *self.api_keys, *webhook_parts]

    @cached_property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.mv_cors_origins.split(",") if origin.strip()]
