"""FastAPI dependencies handing the lifespan-built state to routes.

Tests override these (`app.dependency_overrides`) or build the app with their own Settings;
nothing reaches for module globals.
"""

from typing import Annotated

from fastapi import Depends, Request

from backend.mv.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread
    hop per request that also queues behind file writes for the pool's threads."""
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
