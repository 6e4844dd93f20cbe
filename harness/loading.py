"""Reading user-supplied YAML into typed models, with one-line errors naming file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import BadInput

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def bad_input_from(source: str | Path, error: ValidationError, prefix: str = "") -> BadInput:
    first = error.errors()[0]
    loc = tuple(first["loc"])
    where = field_path(loc)
    if prefix:
        where = f"{prefix}.{where}" if where != "(top level)" else prefix
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required field is missing"
    elif first["type"] == "literal_error":
        message = f"{first['msg']}, got {first.get('input')!r}"
    return BadInput(source, where, message)


def read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise BadInput(path, None, "file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(path, None, f"cannot read: {error}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise BadInput(path, where, f"malformed YAML: {problem}") from None


def load_model(path: Path, model: type[M], what: str) -> M:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise BadInput(path, None, f"expected a mapping describing a {what}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise bad_input_from(path, error) from None
