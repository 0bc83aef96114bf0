"""The service's state, built by one function that the app, a test or a script can call.

`build_runtime(settings)` reads the YAML, builds the SDK clients, the store and every
generator's strategy (live or mock) once; `Runtime.aclose()` lets paid cancels finish and
closes the pools. Domain functions take the collaborators they use from it, never the
whole object.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import replicate

from backend.config import Settings
from backend.mv import debug
from backend.mv.configuration import CONFIG_DIR, MVConfigs, load_configs
from backend.mv.image_generator import ImageDrawer
from backend.mv.providers import JobPolicy, Provider
from backend.mv.providers.downloads import Downloader, download_session
from backend.mv.providers.gemini.client import build_gemini_client, gemini_session
from backend.mv.providers.gemini.scenes import GeminiSceneWriter
from backend.mv.providers.mock.images import MockImageDrawer
from backend.mv.providers.mock.scenes import MockSceneWriter
from backend.mv.providers.replicate.client import build_replicate_client, close_replicate_client
from backend.mv.providers.replicate.images import ReplicateImageDrawer
from backend.mv.providers.replicate.predictions import finish_cancellations
from backend.mv.scene_generator import SceneWriter
from backend.mv.storage.base import ArtifactStore
from backend.mv.storage.local import LocalStore
from backend.mv.video_backends import VideoBackendName, VideoBackends, build_video_backends
from backend.mv.video_backends.mock import MockVideoBackend

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    configs: MVConfigs
    store: ArtifactStore
    scene_writer: SceneWriter
    image_drawer: ImageDrawer
    video_backends: VideoBackends
    replicate: replicate.Client | None
    sessions: tuple[aiohttp.ClientSession, ...]
    """The aiohttp pools (downloads, Gemini); the Google SDK leaves the one we give it open."""

    async def cancel_upstream(self, backend: str, provider_job_id: str) -> None:
        """Cancel a provider job where the provider allows it (Replicate); the Gemini
        Developer API has no cancel, and mock jobs cost nothing."""
        if backend == Provider.REPLICATE and self.replicate is not None:
            await self.replicate.predictions.async_cancel(provider_job_id)
            logger.info("cancelled prediction %s upstream", provider_job_id)

    async def aclose(self) -> None:
        """At shutdown, once the jobs are stopped: let cancels already sent finish, then
        close every pool."""
        await finish_cancellations()
        for session in self.sessions:
            await session.close()
        await close_replicate_client(self.replicate)


async def build_runtime(settings: Settings, *, config_dir: Path = CONFIG_DIR) -> Runtime:
    """Must run inside the event loop (aiohttp binds its sessions to it). Raises
    `ConfigError` naming the first bad config file.

    Every client trusts what httpx trusts by default: certifi, or `SSL_CERT_FILE` /
    `SSL_CERT_DIR` as set now.
    """
    configs = load_configs(config_dir)
    debug.log_configs_loaded(configs)
    store = LocalStore(settings.mv_output_dir)
    if removed := await store.remove_leftovers():
        logger.info("removed %d leftovers of an interrupted run from the staging folder", removed)

    trust = httpx.create_ssl_context()
    downloads = download_session(settings, trust)
    downloader = Downloader(downloads, settings.mv_upstream_max_attempts)
    gemini_pool = gemini_session(settings, trust)
    gemini = build_gemini_client(settings, gemini_pool, trust)
    replicate_client = build_replicate_client(settings)
    policy = JobPolicy.from_settings(settings)
    delay = settings.mv_mock_delay_seconds
    if settings.mv_mock_mode:
        scene_writer: SceneWriter = MockSceneWriter(delay)
        image_drawer: ImageDrawer = MockImageDrawer(delay)
        video_backends: VideoBackends = dict.fromkeys(VideoBackendName, MockVideoBackend(delay))
    else:
        scene_writer = GeminiSceneWriter(gemini, model=configs.parameters.model, policy=policy)
        image_drawer = ReplicateImageDrawer(
            replicate_client,
            downloader,
            model=configs.image_params.model,
            model_inputs=configs.image_params.model_inputs,
            policy=policy,
        )
        video_backends = build_video_backends(
            settings,
            configs.video_params,
            gemini=gemini,
            gemini_session=gemini_pool,
            replicate_client=replicate_client,
            downloader=downloader,
            policy=policy,
        )
    return Runtime(
        settings=settings,
        configs=configs,
        store=store,
        scene_writer=scene_writer,
        image_drawer=image_drawer,
        video_backends=video_backends,
        replicate=replicate_client,
        sessions=(downloads, gemini_pool),
    )
