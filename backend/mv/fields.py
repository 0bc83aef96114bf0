"""Checks shared by the request models' text fields."""

import unicodedata

from pydantic import AfterValidator

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
