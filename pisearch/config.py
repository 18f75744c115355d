"""Load YAML configuration files and validate them with pydantic, turning every problem into one
:class:`UserError` line that names the file, the key path and the reason."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pisearch.errors import UserError

M = TypeVar("M", bound=BaseModel)
UNION_TAG = "|"  # prefix of a tagged union member's tag: not a key, so left out of error key paths


class ConfigModel(BaseModel):
    """The one base of every file format pisearch reads (study, search space, spec JSON, fidelity, linearization
    settings): an unknown key is refused, a value of another type is not converted (``"16"`` is not 16, ``true``
    is not 1; an integer is a valid float) and a validated value is frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def exists(path: str | Path) -> bool:
    """Whether ``path`` names anything; a name the system cannot even look up (too long, a NUL byte) does not."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def read_bytes(path: str | Path) -> bytes:
    """The loader of every file pisearch reads: its bytes; a missing or unreadable file, a folder in its place
    or a name the system refuses raises one ``UserError`` line naming it."""
    path = Path(path)
    try:
        if path.is_dir():
            raise UserError(f"{path}: (file): is a folder, expected a file")
        return path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: (file): cannot read it ({err.strerror or err})") from None
    except ValueError as err:  # e.g. a NUL byte in the name
        raise UserError(f"{path!s:.200}: (file): cannot read it ({err})") from None


def read_text(path: str | Path) -> str:
    """A text file's contents (UTF-8, :func:`read_bytes`); an undecodable file raises one ``UserError`` line
    naming it."""
    try:
        return read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: (file): not a text file (not valid UTF-8)") from None


def read_json(path: str | Path, expect: type = dict) -> Any:
    """A JSON file's value, which must be an ``expect`` (a mapping by default); bad JSON (a truncated file) or
    another top-level type raises one ``UserError`` line naming the file."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except ValueError as err:
        where = f" at line {err.lineno}, column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise UserError(f"{path}: (file): not valid JSON{where}") from None
    if not isinstance(data, expect):
        names = {dict: "a mapping of keys", list: "a list"}
        raise UserError(f"{path}: (top level): expected {names.get(expect, expect.__name__)}, got "
                        f"{type(data).__name__}")
    return data


@contextmanager
def new_folder(path: str | Path) -> Iterator[Path]:
    """Make the folder ``path`` whole or not at all: the block fills a temporary sibling (yielded), which is then
    renamed to ``path``; if the block raises (a refused input, Ctrl-C), nothing is left, not even the parent
    folders this made."""
    path = Path(path)
    top = path.parent
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    made = None if top.exists() else top
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise


def read_yaml(path: str | Path) -> dict:
    """Parse a YAML mapping safely (``yaml.safe_load``); an unreadable file, bad syntax or a non-mapping
    raises ``UserError("path: (file|top level): reason")``."""
    path = Path(path)
    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "parse error"
        raise UserError(f"{path}: (file): not valid YAML: {problem}{where}") from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise UserError(f"{path}: (top level): expected a mapping of keys, got {got}")
    return data


def key_path(loc: tuple) -> str:
    """Render a pydantic error location as ``a.b[2].c``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class holding the key at ``loc`` (to list the allowed keys of an unknown-key error)."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if part not in getattr(model, "model_fields", {}):
            return None
        ann = model.model_fields[part].annotation
        model = next((a for a in (ann, *get_args(ann)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model


def reason(err: Mapping, root: type[BaseModel]) -> str:
    """A plain-words reason for one pydantic error of a ``root`` model."""
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        model = _model_at(root, err["loc"])
        return f"unknown key (allowed: {', '.join(model.model_fields)})" if model else "unknown key"
    if kind == "missing":
        return "missing required key"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "model_type":
        return f"expected a mapping of keys, got {err['input']!r}"
    return f"{msg}, got {err['input']!r}"


def validate(model: type[M], data: Any, source: str, error: type[UserError] = UserError) -> M:
    """``model.model_validate(data)``; the first problem becomes ``error("source: key.path: reason")``."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first, *rest = err.errors()
        loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith(("function-", UNION_TAG))))
        more = f" (and {len(rest)} more problem{'s' if len(rest) > 1 else ''})" if rest else ""
        raise error(f"{source}: {key_path(loc)}: {reason(first, model)}{more}") from None


def load(model: type[M], path: str | Path) -> M:
    """Read and validate a YAML file into ``model``."""
    return validate(model, read_yaml(path), str(path))
