"""The OpenAPI schema states the rules the YAML configs set, as they are loaded.

The request models cannot know the allowed lists (an operator edits them in
`configs/*.yaml`), so the schema is patched with them when it is built: Swagger UI and
client generators then offer exactly the values the service accepts. A value outside them
is still refused with a 400 that names the allowed ones.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from backend.mv.configuration import MVConfigs


def _value_schema(schemas: dict[str, Any], model: str, field: str) -> dict[str, Any]:
    """The non-null branch of an optional field's schema (`anyOf: [{...}, {"type": "null"}]`)."""
    field_schema = schemas[model]["properties"][field]
    branches = field_schema.get("anyOf", [field_schema])
    return next(branch for branch in branches if branch.get("type") != "null")


def _config_rules(configs: MVConfigs) -> dict[tuple[str, str], dict[str, Any]]:
    images = configs.image_params.allowed
    videos = configs.video_params.allowed
    return {
        ("CreateScenesRequest", "number_of_scenes"): {
            "maximum": configs.parameters.max_number_of_scenes
        },
        ("GenerateCharacterReferenceRequest", "aspect_ratio"): {"enum": images.aspect_ratio},
        ("GenerateCharacterReferenceRequest", "safety_filter_level"): {
            "enum": images.safety_filter_level
        },
        ("GenerateCharacterReferenceRequest", "person_generation"): {
            "enum": images.person_generation
        },
        ("GenerateCharacterReferenceRequest", "output_format"): {"enum": images.output_format},
        ("GenerateVideoRequest", "aspect_ratio"): {"enum": videos.aspect_ratio},
        ("GenerateVideoRequest", "duration"): {"enum": videos.duration},
    }


def install_config_aware_openapi(app: FastAPI, load: Callable[[], MVConfigs]) -> None:
    """`app.openapi()` is FastAPI's schema (built once and cached by FastAPI) with the rules
    of `load()`'s configs written into it; writing them again is harmless."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemas = schema["components"]["schemas"]
        for (model, field), rules in _config_rules(load()).items():
            _value_schema(schemas, model, field).update(rules)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
