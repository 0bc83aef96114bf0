"""Video backends behind one interface, and the registry that builds them by name.

`replicate` (default) and `gemini` call the providers; `mock` renders a local clip at no
cost. In mock mode (`MV_MOCK_MODE=true`) `runtime.build_runtime` serves every name from the
mock instead. A new backend is a member of `VideoBackendName` and one entry in
`build_video_backends`.
"""

from enum import StrEnum

import aiohttp
from google import genai
from replicate import Client as ReplicateClient

from backend.config import Settings
from backend.mv.configuration import VideoParams
from backend.mv.providers import JobPolicy
from backend.mv.providers.downloads import Downloader
from backend.mv.video_backends.base import VideoBackend
from backend.mv.video_backends.gemini import GeminiVideoBackend
from backend.mv.video_backends.mock import MockVideoBackend
from backend.mv.video_backends.replicate import ReplicateVideoBackend


class VideoBackendName(StrEnum):
    """What a request's `backend` may name."""

    REPLICATE = "replicate"
    GEMINI = "gemini"
    MOCK = "mock"


DEFAULT_BACKEND = VideoBackendName.REPLICATE

VideoBackends = dict[VideoBackendName, VideoBackend]


def build_video_backends(
    settings: Settings,
    params: VideoParams,
    *,
    gemini: genai.Client | None,
    gemini_session: aiohttp.ClientSession,
    replicate_client: ReplicateClient | None,
    downloader: Downloader,
    policy: JobPolicy,
) -> VideoBackends:
    """Every live backend, built once with its client and config, and the mock beside them
    (a request may name `mock` in live mode too)."""
    return {
        VideoBackendName.REPLICATE: ReplicateVideoBackend(
            replicate_client,
            downloader,
            model=params.replicate_model,
            model_inputs=params.replicate_model_inputs,
            policy=policy,
        ),
        VideoBackendName.GEMINI: GeminiVideoBackend(
            gemini,
            gemini_session,
            downloader,
            model=params.gemini_model,
            policy=policy,
            api_key=settings.gemini_api_key,
            base_url=settings.google_gemini_base_url,
        ),
        VideoBackendName.MOCK: MockVideoBackend(settings.mv_mock_delay_seconds),
    }
