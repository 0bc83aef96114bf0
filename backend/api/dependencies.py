"""FastAPI dependencies handing each lifespan-built collaborator to the routes that use it.

Tests override these (`app.dependency_overrides[get_store] = ...`) or build the app with
their own Settings; nothing reaches for module globals.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from backend.config import Settings
from backend.jobs.records import JobStore
from backend.mv.configuration import MVConfigs
from backend.mv.image_generator import ImageDrawer
from backend.mv.scene_generator import SceneWriter
from backend.mv.storage.base import ArtifactStore
from backend.mv.video_backends import VideoBackends


def _from_runtime(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A getter of one `Runtime` field. Async on purpose: FastAPI runs a plain `def`
    dependency in its thread pool, a thread hop per request that also queues behind file
    writes for the pool's threads."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state.runtime, name)

    get.__name__ = f"get_{name}"
    return get


async def get_runtime(request: Request) -> Any:
    return request.app.state.runtime


async def get_job_store(request: Request) -> JobStore:
    return request.app.state.jobs


get_settings = _from_runtime("settings")
get_configs = _from_runtime("configs")
get_store = _from_runtime("store")
get_scene_writer = _from_runtime("scene_writer")
get_image_drawer = _from_runtime("image_drawer")
get_video_backends = _from_runtime("video_backends")

RuntimeDep = Annotated[Any, Depends(get_runtime)]
JobStoreDep = Annotated[JobStore, Depends(get_job_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ConfigsDep = Annotated[MVConfigs, Depends(get_configs)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
SceneWriterDep = Annotated[SceneWriter, Depends(get_scene_writer)]
ImageDrawerDep = Annotated[ImageDrawer, Depends(get_image_drawer)]
VideoBackendsDep = Annotated[VideoBackends, Depends(get_video_backends)]
