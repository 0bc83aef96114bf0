"""What every generator needs, built once by the app's lifespan (or by a test or script)."""

from dataclasses import dataclass
from pathlib import Path

from backend.config import Settings
from backend.mv.concurrency import GenerationLimiter
from backend.mv.configuration import MVConfigs
from backend.mv.providers import ProviderClients


@dataclass
class Runtime:
    settings: Settings
    configs: MVConfigs
    clients: ProviderClients
    limiter: GenerationLimiter

    @property
    def output_root(self) -> Path:
        return self.settings.mv_output_dir
