"""Load YAML configuration files and validate them with pydantic, turning every problem into one
:class:`UserError` line that names the file, the key path and the reason.

YAML and JSON are parsed here and nowhere else (:func:`parse_yaml`, :func:`parse_json`: study, search space and spec
files, arch.json, metrics.json), as strictly as YAML 1.2 reads a mapping: a key set twice in one mapping is an error
naming both lines, never "the last one wins"; YAML anchors and aliases that expand a file beyond
:data:`MAX_EXPANDED_VALUES` values (a "billion laughs" file) or into itself are refused before anything walks it."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
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
# Values (scalars, lists, mappings, keys) a YAML file may hold once its aliases are expanded, when it uses aliases:
# the largest shipped file holds a few hundred; a "billion laughs" file expands to 10**9 from a few lines.
MAX_EXPANDED_VALUES = 100_000
YAML_MERGE = "tag:yaml.org,2002:merge"  # the ``<<`` key of a merge (its keys may be overridden: not a duplicate)
JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


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
    """A JSON file's value (:func:`parse_json`), which must be an ``expect`` (a mapping by default); bad JSON (a
    truncated file), a repeated key or another top-level type raises one ``UserError`` line naming the file."""
    data = parse_json(read_text(path), str(path))
    if not isinstance(data, expect):
        names = {dict: "a mapping of keys", list: "a list"}
        raise UserError(f"{path}: (top level): expected {names.get(expect, expect.__name__)}, got "
                        f"{type(data).__name__}")
    return data


def parse_json(text: str | bytes, source: str, error: type[UserError] = UserError) -> Any:
    """The value of JSON ``text``; invalid JSON, or an object that repeats a key (:func:`_json_repeat`), raises
    ``error("source: …")``."""
    repeated = []

    def pairs(items: list[tuple[str, Any]]) -> dict:
        if len({k for k, _ in items}) < len(items):
            repeated.append(True)
        return dict(items)

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as err:
        raise error(f"{source}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except ValueError:  # bytes that are not UTF-8
        raise error(f"{source}: not valid JSON (not UTF-8)") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply") from None
    if repeated:
        loc, first, second = _json_repeat(text.decode() if isinstance(text, bytes) else text)
        raise error(duplicate_key(source, loc, first, second))
    return data


def duplicate_key(source: str, loc: tuple, first: int, second: int) -> str:
    """The message of a key set twice in one mapping of ``source``, at lines ``first`` and ``second``."""
    return f"{source}: {key_path(loc)}: duplicate key (lines {first} and {second}; a key may appear once)"


def _json_repeat(text: str) -> tuple[tuple, int, int]:
    """(key path, first line, repeated line) of the first key that an object of valid JSON ``text`` repeats: a
    token scan that keeps, per open object, the line of each key (``json`` itself keeps no positions)."""
    open_: list[list] = []  # per open object: [{key: line}, current key]; per list: [None, index]
    line, pos, previous = 1, 0, None
    for token in JSON_TOKEN.finditer(text):
        line += text.count("\n", pos, token.start())
        pos, tok = token.start(), token.group()
        if tok in "{[":
            open_.append([{} if tok == "{" else None, 0])
        elif tok in "}]":
            open_.pop()
        elif tok == "," and open_[-1][0] is None:
            open_[-1][1] += 1
        elif tok == ":":
            keys, key = open_[-1][0], json.loads(previous[0])
            open_[-1][1] = key
            if key in keys:
                return tuple(frame[1] for frame in open_), keys[key], previous[1]
            keys[key] = previous[1]
        previous = (tok, line)
    raise AssertionError("no repeated key")  # parse_json found one


@contextmanager
def new_folder(path: str | Path) -> Iterator[Path]:
    """Make the folder ``path`` whole or not at all: the block fills a temporary sibling (yielded), which is then
    renamed to ``path``; if the block raises (a refused input, Ctrl-C), nothing is left, not even the parent
    folders this made. If another process made ``path`` meanwhile, its folder stays and this raises
    ``FileExistsError`` (this one's sibling removed)."""
    path = Path(path)
    top = path.parent
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    made = None if top.exists() else top
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        _rename_new(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if made is not None and not isinstance(err, FileExistsError):
            shutil.rmtree(made, ignore_errors=True)
        raise


def _rename_new(tmp: Path, path: Path) -> None:
    """Rename the folder ``tmp`` to ``path``, which must not exist (an empty folder is replaced); one that another
    process made meanwhile raises ``FileExistsError``."""
    try:
        tmp.rename(path)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(errno.EEXIST, "made by another process meanwhile", str(path)) from None
        raise


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (made if missing) while the block runs: processes that write the same
    thing in it (an export folder, the live-lock checks of a storage) take turns. A ``flock`` on the folder itself,
    so no lock file is left behind; the kernel releases it when the process dies."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_yaml(path: str | Path) -> dict:
    """A YAML file's mapping (:func:`parse_yaml`); an unreadable file, bad syntax, a repeated key, an alias bomb or
    a non-mapping raises ``UserError("path: (file|top level|key.path): reason")``."""
    data = parse_yaml(read_text(path), str(path))
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise UserError(f"{path}: (top level): expected a mapping of keys, got {got}")
    return data


def parse_yaml(text: str, source: str) -> Any:
    """The value of YAML ``text``, read safely (``yaml.SafeLoader``: plain data, no Python objects) and strictly:
    the composed document is checked (:func:`_check_yaml`) before it is turned into Python values."""
    try:
        return _load_checked(text, source)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "parse error"
        raise UserError(f"{source}: (file): not valid YAML: {problem}{where}") from None
    except RecursionError:
        raise UserError(f"{source}: (file): nested too deeply") from None


def _load_checked(text: str, source: str) -> Any:
    """Compose the one document of ``text``, check it (:func:`_check_yaml`) and construct its value."""
    loader = yaml.SafeLoader(text)  # reading starts here: a control character raises already
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml(node, loader, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_yaml(root: yaml.Node, loader: yaml.SafeLoader, source: str) -> None:
    """Refuse a YAML document whose mappings repeat a key (:func:`duplicate_key`), whose aliases refer to a value
    that contains them, or whose aliases expand it beyond :data:`MAX_EXPANDED_VALUES` values. Each node is visited
    once (an alias is a node seen again), so a bomb costs as little to check as to compose."""
    sizes: dict[int, int] = {}  # expanded size of each node visited, by id
    aliased = False

    def size(node: yaml.Node, loc: tuple) -> int:
        nonlocal aliased
        if id(node) in sizes:
            aliased = True
            if sizes[id(node)] < 0:
                raise UserError(f"{source}: {key_path(loc)}: an alias refers to a value that contains it")
            return sizes[id(node)]
        sizes[id(node)] = -1  # being visited
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item, (*loc, i)) for i, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key_node, value in node.value:
                key, here = _key(key_node, loader), (*loc, str(key_node.value))  # the key as written
                if key is not None and key in lines:
                    raise UserError(duplicate_key(source, here, lines[key], key_node.start_mark.line + 1))
                if key is not None:
                    lines[key] = key_node.start_mark.line + 1
                total += size(key_node, loc) + size(value, loc if key is None else here)
        sizes[id(node)] = total
        return total

    if size(root, ()) > MAX_EXPANDED_VALUES and aliased:
        raise UserError(f"{source}: (file): its anchors and aliases expand it to more than {MAX_EXPANDED_VALUES:,} "
                        "values; refusing it")


def _key(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    """The value of a mapping's key node when it can repeat another (a hashable scalar); None for a merge
    (``<<``) or a list or mapping used as a key (their construction reports them)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == YAML_MERGE:
        return None
    key = loader.construct_object(node)
    try:
        hash(key)
    except TypeError:
        return None
    return key


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
