"""FastAPI dependencies handing the lifespan-built state to routes.

Tests override these (`app.dependency_overrides`) or build the app with their own Settings;
nothing reaches for module globals.
"""

from typing import Annotated

from fastapi import Depends, Request

from backend.config import Settings
from backend.mv.configuration import MVConfigs
from backend.mv.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


def get_configs(runtime: Annotated[Runtime, Depends(get_runtime)]) -> MVConfigs:
    return runtime.configs


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
