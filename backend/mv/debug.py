"""`MV_DEBUG_MODE` logging: what a request asked for, what defaults filled in, the configs
loaded, the exact prompts sent and (truncated) raw provider answers.

The `backend` logger is set to DEBUG only in debug mode, so these cost nothing otherwise.
Values pass through `_safe` first: long strings are cut and base64 payloads are replaced by
their length. Callers never pass keys or tokens here.
"""

import json
import logging
from functools import partial
from typing import Any

from pydantic import BaseModel

logger = logging.getLogger("backend.mv.debug")

MAX_LOGGED_CHARS = 2000
BASE64_KEY_MARKERS = ("base64", "b64", "image_data")


def _truncate(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} more chars]"


def _safe(value: Any, key: str = "") -> Any:
    """A loggable copy of `value`; SDK models (pydantic v2, or v1 like replicate's) are
    dumped here, so callers pass them as they are and pay nothing when debug is off."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    elif hasattr(value, "dict") and callable(value.dict):
        value = value.dict()
    if isinstance(value, dict):
        return {name: _safe(item, str(name)) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(item, key) for item in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        if any(marker in key.lower() for marker in BASE64_KEY_MARKERS) or value.startswith("data:"):
            return f"<base64, {len(value)} chars>"
        return _truncate(value)
    return value


def _log(event: str, endpoint: str, payload: Any) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        rendered = payload if isinstance(payload, str) else json.dumps(_safe(payload), default=str)
        logger.debug(
            "%s endpoint=%s %s", event, endpoint, _truncate(rendered, 4 * MAX_LOGGED_CHARS)
        )


def log_request_args(endpoint: str, arguments: Any) -> None:
    _log("request_args", endpoint, arguments)


def log_defaults_applied(endpoint: str, defaults: dict[str, Any]) -> None:
    _log("defaults_applied", endpoint, defaults)


def log_prompt(endpoint: str, prompt: str) -> None:
    _log("prompt", endpoint, _truncate(prompt, 4 * MAX_LOGGED_CHARS))


def log_provider_response(endpoint: str, response: Any) -> None:
    _log("provider_response", endpoint, response)


def log_configs_loaded(configs: BaseModel) -> None:
    _log("configs_loaded", "startup", configs)


def log_backend_selected(endpoint: str, backend: str, model: str) -> None:
    _log("backend_selected", endpoint, {"backend": backend, "model": model})


def log_generation_result(endpoint: str, result: Any) -> None:
    _log("generation_result", endpoint, result)


SCENES = "create_scenes"
IMAGES = "generate_character_reference"
VIDEOS = "generate_video"

log_scene_request_args = partial(log_request_args, SCENES)
log_scene_defaults_applied = partial(log_defaults_applied, SCENES)
log_scene_prompt = partial(log_prompt, SCENES)
log_gemini_response = partial(log_provider_response, SCENES)

log_image_request_args = partial(log_request_args, IMAGES)
log_image_defaults_applied = partial(log_defaults_applied, IMAGES)
log_image_prompt = partial(log_prompt, IMAGES)
log_replicate_response = partial(log_provider_response, IMAGES)

log_video_request_args = partial(log_request_args, VIDEOS)
log_video_defaults_applied = partial(log_defaults_applied, VIDEOS)
log_video_prompt = partial(log_prompt, VIDEOS)
log_video_backend_selected = partial(log_backend_selected, VIDEOS)
log_video_provider_response = partial(log_provider_response, VIDEOS)
log_video_generation_result = partial(log_generation_result, VIDEOS)
