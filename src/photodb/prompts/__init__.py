"""Prompt sets for zero-shot tagging: the file format, the shipped defaults, and their validation.

A prompt file (format `photodb-prompts/1`) lists categories; each label has phrases, and each
phrase is put into every template of its category. The texts so made are what the CLIP text
encoder sees: their embeddings are averaged and re-normalised into the label's one vector
(prompt ensembling), which is steadier than any single wording.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PROMPT_FILE_FORMAT = "photodb-prompts/1"
Target = Literal["scene", "face"]
SelectionMode = Literal["single", "multi"]
#: Tag categories the stage writes itself, never prompt categories.
RESERVED_CATEGORIES = frozenset({"taxonomy", "object"})
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class CategorySpec:
    """A category as a user or the defaults define it: how to select, and each label's texts."""

    name: str
    target: Target
    selection_mode: SelectionMode
    min_confidence: float
    description: str | None
    labels: dict[str, tuple[str, ...]]  # label -> texts given to the text encoder


class _Category(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    target: Target
    selection_mode: SelectionMode
    min_confidence: float = Field(ge=0, le=1)
    description: str | None = None
    templates: list[str] = Field(default_factory=lambda: ["{}"], min_length=1)
    labels: dict[str, list[str]] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_CATEGORIES:
            raise ValueError(f"{name!r} is reserved for the stage's own tags")
        return name

    @field_validator("templates")
    @classmethod
    def _one_slot_each(cls, templates: list[str]) -> list[str]:
        for template in templates:
            if template.count("{}") != 1:
                raise ValueError(f"template {template!r} must contain '{{}}' exactly once")
        return templates

    @field_validator("labels")
    @classmethod
    def _phrases(cls, labels: dict[str, list[str]]) -> dict[str, list[str]]:
        for label, phrases in labels.items():
            if not label.strip() or not phrases or not all(p.strip() for p in phrases):
                raise ValueError(f"label {label!r} needs a name and at least one non-empty phrase")
        return labels

    def spec(self) -> CategorySpec:
        labels = {
            label: tuple(template.replace("{}", phrase.strip()) for phrase in phrases for template in self.templates)
            for label, phrases in self.labels.items()
        }
        return CategorySpec(self.name, self.target, self.selection_mode, self.min_confidence, self.description, labels)


class _PromptFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: Literal["photodb-prompts/1"]
    categories: list[_Category] = Field(min_length=1)


def parse_prompt_file(text: str, source: str) -> list[CategorySpec]:
    """The categories of a prompt file's text; PromptFileError names `source` and the problem."""
    try:
        parsed = _PromptFile.model_validate(json.loads(text))
    except json.JSONDecodeError as error:
        raise PromptFileError(f"{source}: not JSON ({error.msg} at line {error.lineno})") from error
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PromptFileError(f"{source}: {where}: {first['msg']}") from error
    names = [c.name for c in parsed.categories]
    if len(set(names)) != len(names):
        raise PromptFileError(f"{source}: a category is listed twice")
    return [category.spec() for category in parsed.categories]


def load_prompt_file(path: Path) -> list[CategorySpec]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PromptFileError(f"cannot read {path}: {error.strerror}") from error
    return parse_prompt_file(text, str(path))


def default_prompts() -> list[CategorySpec]:
    """The prompt set shipped in the package (spec: mood … social for scenes, emotion … gaze for faces)."""
    text = resources.files(__package__).joinpath("default_prompts.json").read_text(encoding="utf-8")
    return parse_prompt_file(text, "default_prompts.json")
