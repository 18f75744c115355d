"""Load YAML configuration files and validate them with pydantic, turning every problem into one
:class:`UserError` line that names the file, the key path and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pisearch.errors import UserError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: str | Path) -> dict:
    """Parse a YAML mapping safely (``yaml.safe_load``); missing file, bad syntax or a non-mapping → UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def key_path(loc: tuple) -> str:
    """Render a pydantic error location as ``a.b[2].c``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(model: type[M], data: Any, source: str, prefix: str = "") -> M:
    """``model.model_validate(data)``; the first validation error becomes ``UserError("source: key: reason")``."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = key_path(((prefix,) if prefix else ()) + loc)
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown key"
        raise UserError(f"{source}: {key}: {reason}") from None


def load(model: type[M], path: str | Path) -> M:
    """Read and validate a YAML file into ``model``."""
    return validate(model, read_yaml(path), str(path))
