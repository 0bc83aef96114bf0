"""What every generator needs, built once by the app's lifespan (or by a test or script)."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from backend.config import Settings
from backend.mv.concurrency import GenerationLimiter
from backend.mv.configuration import MVConfigs
from backend.mv.idempotency import IdempotencyStore
from backend.mv.providers import ProviderClients


@dataclass
class Runtime:
    settings: Settings
    configs: MVConfigs
    clients: ProviderClients
    limiter: GenerationLimiter
    idempotency: IdempotencyStore

    @property
    def output_root(self) -> Path:
        return self.settings.mv_output_dir


ClientGone = Callable[[], Awaitable[bool]]
"""Asks whether the client that sent a request has disconnected (for the sidecar's record)."""


async def client_left(client_gone: ClientGone | None) -> bool:
    return client_gone is not None and await client_gone()
