"""The YAML configs under `configs/`, loaded once at startup into typed objects.

Model names, defaults, allowed values and prompt templates are data: changing them needs no
code. A missing or malformed file stops startup with the file's name and the problem.
"""

from pathlib import Path
from string import Formatter
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(Exception):
    """A config file is missing or invalid; the message names the file and the problem."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name}


def _require_placeholders(template: str, required: set[str], allowed: set[str]) -> str:
    found = _placeholders(template)
    if missing := required - found:
        raise ValueError(f"template lacks placeholder(s) {sorted(missing)}")
    if unknown := found - allowed:
        raise ValueError(f"template has unknown placeholder(s) {sorted(unknown)}")
    return template


class SceneParameters(_Config):
    """`parameters.yaml`: defaults for create_scenes."""

    character_characteristics: str = Field(min_length=1)
    number_of_scenes: int = Field(ge=1)
    max_number_of_scenes: int = Field(ge=1)
    video_type: str = Field(min_length=1)
    video_characteristics: str = Field(min_length=1)
    camera_angle: str = Field(min_length=1)
    model: str = Field(min_length=1)

    @model_validator(mode="after")
    def _default_within_maximum(self) -> "SceneParameters":
        if self.number_of_scenes > self.max_number_of_scenes:
            raise ValueError("number_of_scenes is above max_number_of_scenes")
        return self


SCENE_PROMPT_FIELDS = {
    "idea",
    "character_description",
    "character_characteristics",
    "number_of_scenes",
    "video_type",
    "video_characteristics",
    "camera_angle",
}


class ScenePrompts(_Config):
    """`scene_prompts.yaml`: the Gemini prompt template."""

    scene_generation_prompt: str

    @model_validator(mode="after")
    def _known_placeholders(self) -> "ScenePrompts":
        _require_placeholders(
            self.scene_generation_prompt,
            {"idea", "character_description", "number_of_scenes"},
            SCENE_PROMPT_FIELDS,
        )
        return self


class ImageAllowedValues(_Config):
    aspect_ratio: list[str] = Field(min_length=1)
    output_format: list[Literal["png", "jpg"]] = Field(min_length=1)
    safety_filter_level: list[str] = Field(min_length=1)
    person_generation: list[str] = Field(min_length=1)


class VideoAllowedValues(_Config):
    aspect_ratio: list[str] = Field(min_length=1)
    duration: list[int] = Field(min_length=1)


def _check_defaults_allowed(checks: list[tuple[str, object, list]]) -> None:
    for name, value, allowed in checks:
        if value not in allowed:
            raise ValueError(f"default {name} {value!r} is not in its allowed list {allowed}")


class ImageParams(_Config):
    """`image_params.yaml`: Imagen defaults and allowed values."""

    model: str
    aspect_ratio: str
    safety_filter_level: str
    person_generation: str
    output_format: str
    allowed: ImageAllowedValues
    model_inputs: list[str]

    @model_validator(mode="after")
    def _defaults_are_allowed(self) -> "ImageParams":
        _check_defaults_allowed(
            [
                ("aspect_ratio", self.aspect_ratio, self.allowed.aspect_ratio),
                ("output_format", self.output_format, self.allowed.output_format),
                ("safety_filter_level", self.safety_filter_level, self.allowed.safety_filter_level),
                ("person_generation", self.person_generation, self.allowed.person_generation),
            ]
        )
        return self


class VideoParams(_Config):
    """`video_params.yaml`: Veo defaults and allowed values, and the rules every prompt gets."""

    replicate_model: str
    gemini_model: str
    aspect_ratio: str
    duration: int
    generate_audio: bool
    person_generation: str
    person_generation_with_reference: str
    allowed: VideoAllowedValues
    rules_template: str
    replicate_model_inputs: list[str]

    @model_validator(mode="after")
    def _defaults_are_allowed(self) -> "VideoParams":
        _check_defaults_allowed(
            [
                ("aspect_ratio", self.aspect_ratio, self.allowed.aspect_ratio),
                ("duration", self.duration, self.allowed.duration),
            ]
        )
        _require_placeholders(self.rules_template, set(), {"aspect_ratio"})
        return self


class ImagePrompts(_Config):
    """`image_prompts.yaml`: the character reference prompt template."""

    character_reference_prompt: str

    @model_validator(mode="after")
    def _known_placeholders(self) -> "ImagePrompts":
        _require_placeholders(
            self.character_reference_prompt,
            {"character_description"},
            {"character_description"},
        )
        return self


class MVConfigs(_Config):
    """All configs together, as the lifespan keeps them on `app.state`."""

    parameters: SceneParameters
    scene_prompts: ScenePrompts
    image_params: ImageParams
    image_prompts: ImagePrompts
    video_params: VideoParams


CONFIG_FILES: dict[str, tuple[str, type[_Config]]] = {
    "parameters": ("parameters.yaml", SceneParameters),
    "scene_prompts": ("scene_prompts.yaml", ScenePrompts),
    "image_params": ("image_params.yaml", ImageParams),
    "image_prompts": ("image_prompts.yaml", ImagePrompts),
    "video_params": ("video_params.yaml", VideoParams),
}


def _load_file(path: Path, model: type[_Config]) -> _Config:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} is missing") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"config file {path} is invalid: {problems}") from exc


def load_configs(directory: Path = CONFIG_DIR) -> MVConfigs:
    """Read and validate every config file; raises `ConfigError` naming the first bad one."""
    loaded = {
        name: _load_file(directory / filename, model)
        for name, (filename, model) in CONFIG_FILES.items()
    }
    return MVConfigs(**loaded)
