"""Turning a bad setting or `.env` line into one line a user can act on, with secrets masked.

pydantic's own report spans several lines per error and links to its documentation; a user needs
the variable, the value they gave, where it came from and what would be accepted.
"""

from __future__ import annotations

import io
import os
import re
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from dotenv.parser import parse_stream
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

#: Exit status of every command when its configuration is invalid (as for other usage errors).
EXIT_CONFIG = 2

#: What a field accepts, where its type and bounds do not say it well enough.
ACCEPTED_OVERRIDES = {
    "database_url": "a PostgreSQL URL such as postgresql://user:password@host:5432/photodb "
    "(or key=value pairs), or unset for the embedded server",
}

_URL_PASSWORD = re.compile(r"(?P<head>://[^/@:\s]*:)[^@\s]*@")
_KEYWORD_PASSWORD = re.compile(r"(?P<head>password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
_MAX_SHOWN = 80
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class ConfigurationError(Exception):
    """The settings cannot be used; str() is one line per problem, with no secret in it."""


def mask_secrets(text: str) -> str:
    """`text` with URL passwords and password=… values replaced by ***."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEYWORD_PASSWORD.sub(r"\g<head>***", text)


def _is_secret(field: FieldInfo) -> bool:
    return SecretStr in (field.annotation, *get_args(field.annotation))


def shown_value(field: FieldInfo | None, value: Any) -> str:
    """The value as the user wrote it, quoted; secrets masked, long values cut."""
    if field is not None and _is_secret(field):
        text = mask_secrets(str(value))
        if text == str(value) and "://" not in text and "=" not in text:
            return "'***'"  # an API key or ARN: nothing of it is shown
    else:
        text = str(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 1] + "…"
    return repr(text)


def _bounds(field: FieldInfo) -> list[str]:
    words = []
    for item in field.metadata:
        if isinstance(item, annotated_types.Gt):
            words.append(f"greater than {item.gt}")
        elif isinstance(item, annotated_types.Ge):
            words.append(f"at least {item.ge}")
        elif isinstance(item, annotated_types.Lt):
            words.append(f"less than {item.lt}")
        elif isinstance(item, annotated_types.Le):
            words.append(f"at most {item.le}")
    return words


_TYPE_WORDS = {
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    str: "text",
    SecretStr: "text",
    Path: "a path",
}


def accepted(name: str, field: FieldInfo) -> str:
    """What `field` accepts, in words: its type, bounds and choices."""
    if name in ACCEPTED_OVERRIDES:
        return ACCEPTED_OVERRIDES[name]
    annotation = field.annotation
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(get_args(annotation))
        annotation = members[0] if len(members) == 1 else annotation
    if get_origin(annotation) is Literal:
        words = "one of " + ", ".join(str(choice) for choice in get_args(annotation))
    else:
        words = _TYPE_WORDS.get(annotation, str(annotation))  # type: ignore[call-overload]
        bounds = _bounds(field)
        if bounds:
            words += " " + " and ".join(bounds)
    return words + (", or empty for unset" if optional else "")


def _env_file_line(env_file: Path, name: str) -> int | None:
    """The last line of `env_file` that sets `name` (the one that wins), if any."""
    pattern = re.compile(rf"^\s*(export\s+)?{re.escape(name)}\s*=", re.IGNORECASE)
    found = None
    for number, line in enumerate(env_file.read_text(encoding="utf-8").splitlines(), start=1):
        if pattern.match(line):
            found = number
    return found


def _source(variable: str, env_file: Path | None) -> str:
    if any(key.upper() == variable for key in os.environ):
        return "environment"
    if env_file is not None and env_file.is_file():
        line = _env_file_line(env_file, variable)
        if line is not None:
            return f"{env_file} line {line}"
    return "settings"


def describe_validation_error(
    error: ValidationError, model: type[BaseModel], env_file: Path | None
) -> ConfigurationError:
    """One line per invalid setting: variable, value (masked), where it was set, what is accepted."""
    lines = []
    for item in error.errors(include_url=False):
        name = str(item["loc"][0]) if item["loc"] else ""
        field = model.model_fields.get(name)
        if field is None:
            lines.append(f"invalid configuration: {item['msg']}")
            continue
        variable = name.upper()
        where = _source(variable, env_file)
        reason = str(item["msg"]).removeprefix("Value error, ") + "; " if item["type"] == "value_error" else ""
        lines.append(
            f"invalid setting {variable}={shown_value(field, item.get('input'))} (from {where}): "
            f"{reason}expected {accepted(name, field)}"
        )
    return ConfigurationError("\n".join(dict.fromkeys(lines)))


def check_env_file(env_file: Path | None) -> None:
    """Refuse a `.env` line that is not NAME=value: python-dotenv would only warn and skip it."""
    if env_file is None or not env_file.is_file():
        return
    try:
        text = env_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"cannot read {env_file}: {error}") from None
    for binding in parse_stream(io.StringIO(text)):
        is_setting = binding.key is not None and _NAME.fullmatch(binding.key) and binding.value is not None
        if binding.error or (binding.key is not None and not is_setting):
            raw = binding.original.string
            line = binding.original.line + len(raw) - len(raw.lstrip("\n"))  # the statement, not blank lines before it
            head = raw.split(maxsplit=1)[0].split("=", 1)[0] if raw.strip() else ""
            name = head if _NAME.fullmatch(head) else None  # anything else may be a secret: not shown
            starts = f" (it starts with {name})" if name else ""
            raise ConfigurationError(f"{env_file} line {line} is not NAME=value{starts}: fix or remove it")
