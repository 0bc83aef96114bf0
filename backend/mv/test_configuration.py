"""Config files: the shipped ones load; a broken one stops startup naming file and problem."""

import shutil
from pathlib import Path

import pytest

from backend.mv.configuration import CONFIG_DIR, ConfigError, load_configs
from backend.testing.apps import make_settings, serve_app


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, target)
    return target


def test_shipped_configs_load_with_documented_defaults() -> None:
    configs = load_configs()
    assert configs.parameters.number_of_scenes == 4
    assert configs.parameters.max_number_of_scenes == 12
    assert configs.parameters.model == "gemini-2.5-pro"
    assert configs.image_params.model == "google/imagen-4"
    assert configs.image_params.aspect_ratio == "1:1"
    assert configs.image_params.output_format == "png"
    assert configs.video_params.replicate_model == "google/veo-3.1"
    assert configs.video_params.duration == 8
    assert configs.video_params.generate_audio is True
    assert "{character_description}" in configs.image_prompts.character_reference_prompt


@pytest.mark.parametrize(
    ("file_name", "content", "problem"),
    [
        ("parameters.yaml", "number_of_scenes: [unclosed", "not valid YAML"),
        ("parameters.yaml", "- just\n- a list\n", "mapping at the top level"),
        ("scene_prompts.yaml", "scene_generation_prompt: 'no placeholders'", "placeholder"),
        ("image_params.yaml", "model: google/imagen-4\n", "invalid"),
    ],
)
def test_broken_config_names_the_file_and_problem(
    config_copy: Path, file_name: str, content: str, problem: str
) -> None:
    (config_copy / file_name).write_text(content)
    with pytest.raises(ConfigError, match=problem) as raised:
        load_configs(config_copy)
    assert file_name in str(raised.value)


def test_missing_config_file_is_named(config_copy: Path) -> None:
    (config_copy / "image_prompts.yaml").unlink()
    with pytest.raises(ConfigError, match=r"image_prompts\.yaml is missing"):
        load_configs(config_copy)


def test_default_outside_its_allowed_list_is_refused(config_copy: Path) -> None:
    path = config_copy / "image_params.yaml"
    path.write_text(path.read_text().replace('aspect_ratio: "1:1"', 'aspect_ratio: "2:1"', 1))
    with pytest.raises(ConfigError, match="aspect_ratio"):
        load_configs(config_copy)


async def test_app_does_not_start_with_a_broken_config(config_copy: Path, tmp_path: Path) -> None:
    (config_copy / "parameters.yaml").write_text("model: [")
    with pytest.raises(ConfigError, match=r"parameters\.yaml"):
        async with serve_app(make_settings(tmp_path), config_dir=config_copy):
            pass


def test_an_output_format_the_code_cannot_store_is_refused(config_copy: Path) -> None:
    path = config_copy / "image_params.yaml"
    path.write_text(path.read_text().replace("output_format: [png, jpg]", "output_format: [webp]"))
    with pytest.raises(ConfigError, match="output_format"):
        load_configs(config_copy)
