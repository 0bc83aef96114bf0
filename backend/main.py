"""The FastAPI application: lifespan, middleware, error handlers and the service routes.

`create_app(settings)` builds an app for any Settings (tests use their own); `app` is the
one uvicorn serves, configured from the environment and `.env`.
"""

import logging
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from backend.api.dependencies import SettingsDep
from backend.api.errors import install_error_handlers
from backend.api.middleware import (
    ApiKeyMiddleware,
    BodySizeLimitMiddleware,
    ErrorShapeCORSMiddleware,
    RequestIdMiddleware,
    UnexpectedErrorMiddleware,
)
from backend.api.openapi import install_config_aware_openapi
from backend.config import REPO_ROOT, Settings
from backend.jobs.engine import JobEngine
from backend.jobs.submission import Shutdown
from backend.logging_setup import configure_logging
from backend.mv.configuration import CONFIG_DIR, ConfigError, MVConfigs, load_configs
from backend.mv.runtime import build_runtime
from backend.routers import assembly, jobs, mv

logger = logging.getLogger("backend")

SERVICE_VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
"""The project's version, read from pyproject.toml: the project is not installed as a
package, so the installed-distribution metadata has none."""

ROUTERS = (mv.router, jobs.router, assembly.router)
MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for an upload's multipart boundaries and part headers beside the file itself."""
SERVICE_ENDPOINTS = {
    "health": "/health",
    "docs": "/docs",
    "redoc": "/redoc",
    "openapi": "/openapi.json",
}


def endpoints() -> dict[str, str]:
    """`GET /`'s endpoint map: the service routes and every `mv_` route, by route name, so
    each path is written once, on its route."""
    named = {
        route.name: route.path
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and route.name.startswith("mv_")
    }
    return {**SERVICE_ENDPOINTS, **named}


def create_app(settings: Settings | None = None, *, config_dir: Path = CONFIG_DIR) -> FastAPI:
    """An app for `settings` (default: environment and `.env`) and the YAML in `config_dir`."""
    settings = settings or Settings()
    configure_logging(debug=settings.mv_debug_mode, secrets=settings.secrets)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        job_engine = JobEngine(settings)
        try:
            app.state.runtime = await build_runtime(settings, config_dir=config_dir)
            app.state.jobs = await job_engine.start(app.state.runtime, app.url_path_for)
        except ConfigError as exc:
            logger.error("cannot start: %s", exc)
            raise
        app.state.jobs_signals = job_engine.signals
        logger.info("ready: mode=%s output_dir=%s", _mode(settings), settings.mv_output_dir)
        try:
            yield
        finally:
            app.state.shutdown.begin()
            await job_engine.stop(drain_seconds=app.state.shutdown.remaining())
            await app.state.runtime.aclose()

    # Swagger UI and ReDoc load their JS and CSS from this app, not a CDN, so /docs and
    # /redoc work without internet.
    app = FastAPIOffline(
        title="Music-video generation API",
        version=SERVICE_VERSION,
        description=(
            "Turns a video idea into the parts of a music video: scene prompts (Gemini), a "
            "character reference image (Imagen 4) and one clip per scene (Veo 3.1). Requests "
            "are synchronous: each answers when its media is ready (10 s to 400 s live)."
        ),
        lifespan=lifespan,
        # No redirect from `/path/` to `/path`: Starlette builds that Location from the
        # client's Host header. A path spelled otherwise is a 404 in the error shape.
        redirect_slashes=False,
    )
    app.state.shutdown = Shutdown(settings.mv_shutdown_grace_seconds)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    _add_service_routes(app)

    def loaded_configs() -> MVConfigs:
        runtime = getattr(app.state, "runtime", None)
        return runtime.configs if runtime is not None else load_configs(config_dir)

    install_config_aware_openapi(app, loaded_configs)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, api_keys=settings.api_keys)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.mv_max_request_bytes,
        limits_by_path={
            app.url_path_for("mv_upload_audio"): settings.mv_max_audio_bytes
            + MULTIPART_OVERHEAD_BYTES
        },
    )
    app.add_middleware(UnexpectedErrorMiddleware)
    # Outside every answer the app makes (413, 401 and 500 included), so each carries the
    # CORS headers a browser needs to read it; inside the request id, which its own
    # refusals carry.
    app.add_middleware(
        ErrorShapeCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "Retry-After", "Content-Range", "Accept-Ranges", "ETag"],
    )
    app.add_middleware(RequestIdMiddleware)
    return app


def _mode(settings: Settings) -> str:
    return "mock" if settings.mv_mock_mode else "live"


def _add_service_routes(app: FastAPI) -> None:
    @app.get("/", summary="Service info", tags=["service"])
    async def service_info(settings: SettingsDep) -> dict:
        """Version, mode (`live` or `mock`), which providers have keys, and every endpoint."""
        return {
            "service": "mv-backend",
            "version": SERVICE_VERSION,
            "mode": _mode(settings),
            "providers_configured": {
                provider: bool(key) for provider, key in settings.provider_key_fields.items()
            },
            "authentication": "api_key" if settings.api_keys else "none",
            "endpoints": endpoints(),
        }

    @app.get("/health", summary="Liveness", tags=["service"])
    async def health() -> dict:
        """Answers at once, whatever else is in flight."""
        return {"status": "ok"}


app = create_app()
