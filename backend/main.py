"""The FastAPI application: lifespan, middleware, error handlers and the service routes.

`create_app(settings)` builds an app for any Settings (tests use their own); `app` is the
one uvicorn serves, configured from the environment and `.env`.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from backend.api_errors import install_error_handlers
from backend.config import Settings
from backend.dependencies import RuntimeDep
from backend.logging_setup import configure_logging
from backend.middleware import ApiKeyMiddleware, BodySizeLimitMiddleware, RequestContextMiddleware
from backend.mv import debug
from backend.mv.concurrency import GenerationLimiter
from backend.mv.configuration import CONFIG_DIR, ConfigError, load_configs
from backend.mv.idempotency import IdempotencyStore
from backend.mv.providers import build_provider_clients
from backend.mv.replicate_runner import finish_cancellations
from backend.mv.runtime import Runtime
from backend.mv.storage import remove_leftover_temporaries
from backend.routers import mv

logger = logging.getLogger("backend")

try:
    SERVICE_VERSION = version("mv-backend")
except PackageNotFoundError:
    SERVICE_VERSION = "0.1.0"

ENDPOINTS = {
    "health": "/health",
    "docs": "/docs",
    "redoc": "/redoc",
    "openapi": "/openapi.json",
    "mv_create_scenes": "/api/mv/create_scenes",
    "mv_generate_character_reference": "/api/mv/generate_character_reference",
    "mv_get_character_reference": "/api/mv/get_character_reference/{image_id}",
    "mv_generate_video": "/api/mv/generate_video",
    "mv_get_video": "/api/mv/get_video/{video_id}",
    "mv_get_video_info": "/api/mv/get_video/{video_id}/info",
}


def create_app(settings: Settings | None = None, *, config_dir: Path = CONFIG_DIR) -> FastAPI:
    """An app for `settings` (default: environment and `.env`) and the YAML in `config_dir`."""
    settings = settings or Settings()
    configure_logging(debug=settings.mv_debug_mode)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            configs = load_configs(config_dir)
        except ConfigError as exc:
            logger.error("cannot start: %s", exc)
            raise
        debug.log_configs_loaded(configs)
        removed = remove_leftover_temporaries(settings.mv_output_dir)
        if removed:
            logger.info("removed %d leftover temporary files", len(removed))
        idempotency = IdempotencyStore(settings.mv_output_dir)
        if pruned := idempotency.prune_expired():
            logger.info("removed %d expired idempotency records", pruned)
        clients = build_provider_clients(settings)
        app.state.runtime = Runtime(
            settings=settings,
            configs=configs,
            clients=clients,
            limiter=GenerationLimiter(settings.mv_max_concurrent_generations),
            idempotency=idempotency,
        )
        logger.info("ready: mode=%s output_dir=%s", _mode(settings), settings.mv_output_dir)
        try:
            yield
        finally:
            await app.state.runtime.idempotency.cancel_running()
            await finish_cancellations()
            await clients.aclose()

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
    )
    install_error_handlers(app)
    app.include_router(mv.router)
    _add_service_routes(app)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, api_keys=settings.api_keys)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.mv_max_request_bytes)
    app.add_middleware(RequestContextMiddleware)
    # Outermost, so every answer (413, 401 and 500 included) carries the CORS headers a
    # browser needs to read it.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "Retry-After", "Content-Range", "Accept-Ranges", "ETag"],
    )
    return app


def _mode(settings: Settings) -> str:
    return "mock" if settings.mv_mock_mode else "live"


def _add_service_routes(app: FastAPI) -> None:
    @app.get("/", summary="Service info", tags=["service"])
    async def service_info(runtime: RuntimeDep) -> dict:
        """Version, mode (`live` or `mock`), which providers have keys, and every endpoint."""
        settings = runtime.settings
        return {
            "service": "mv-backend",
            "version": SERVICE_VERSION,
            "mode": _mode(settings),
            "providers_configured": {
                "gemini": bool(settings.gemini_api_key),
                "replicate": bool(settings.replicate_api_token),
            },
            "authentication": "api_key" if settings.api_keys else "none",
            "endpoints": ENDPOINTS,
        }

    @app.get("/health", summary="Liveness", tags=["service"])
    async def health() -> dict:
        """Answers at once, whatever else is in flight."""
        return {"status": "ok"}


app = create_app()
