"""Pieces shared by the request models: text checks, defaults and allowed choices."""

import unicodedata
from typing import Any

from pydantic import AfterValidator, BaseModel

from backend.mv.errors import problem

ALLOWED_CONTROL_CHARACTERS = {"\n", "\r", "\t"}


def _checked_text(value: str | None) -> str | None:
    """Reject blank text and control characters; the text itself passes on unchanged, because
    the client's words reach the provider verbatim. An optional field's null stays null."""
    if value is None:
        return None
    if not value.strip():
        raise ValueError("must not be blank")
    for character in value:
        if character not in ALLOWED_CONTROL_CHARACTERS and unicodedata.category(character) == "Cc":
            raise ValueError(f"must not contain control character U+{ord(character):04X}")
    return value


CheckedText = AfterValidator(_checked_text)
"""Use as `Annotated[str, Field(max_length=...), CheckedText]`."""


def apply_defaults(
    request: BaseModel, defaults: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The value of each field in `defaults`: the request's own, or the default when the
    request left it out; and the names that took the default (`defaults_applied`)."""
    values: dict[str, Any] = {}
    defaults_applied = []
    for name, default in defaults.items():
        value = getattr(request, name)
        if value is None:
            value = default
            defaults_applied.append(name)
        values[name] = value
    return values, defaults_applied


def choice_problems(values: dict[str, Any], allowed: dict[str, list[Any]]) -> list[dict[str, str]]:
    """A validation problem for each value outside its allowed list (from the YAML configs)."""
    return [
        problem(name, f"must be one of {choices}", "enum")
        for name, choices in allowed.items()
        if values[name] not in choices
    ]
