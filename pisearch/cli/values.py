"""The one place where command-line values are checked, for every command at once.

:func:`command` builds the click command of the typer app and wraps every parameter's callback with
:func:`check_value`, so a value is refused (a usage error: one line, exit code 2) before the command body runs,
and before any file or storage is opened. The rules come from what each parameter declares, never from a list
kept by hand:

* a number (``int``/``float``) must declare its range (``min=`` and ``max=``): :func:`command` refuses to build
  an app with a number option that does not (a programming error, caught by every CLI test). What the user typed
  is checked before typer converts it (:func:`check_raw`): a whole number is ASCII digits (not ``12.0``, ``1_2``
  or ``١٢``), a float a plain decimal (not ``nan``, ``inf`` or ``1_0``), and the converted value must lie in the
  range. ``None`` means "not given"; 0 is a value like any other.
* a string (and each item of a repeatable one) must be non-empty, without control characters, and at most
  :data:`MAX_TEXT` characters.
* a path is an *input* (``exists=True``: typer checks that it exists and its kind) or an *output*
  (``exists=False`` with ``file_okay=False``: a folder, or ``dir_okay=False``: a file); an output must not be
  of the other kind, no part of its parent chain may be a file, and the nearest existing folder above it must
  be writable (:func:`check_output`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, get_args, get_origin

import typer
from typer.main import get_command

MAX_TEXT = 4096  # characters: longer than any path (PATH_MAX) or storage URL a user types
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
INT = re.compile(r"\s*[+-]?[0-9]+\s*")
FLOAT = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")


def check_text(text: str) -> None:
    """A string value: non-empty, printable, not huge (``typer.BadParameter`` otherwise)."""
    if not text.strip():
        raise typer.BadParameter("expected a non-empty value")
    if CONTROL.search(text):
        raise typer.BadParameter("contains a control character")
    if len(text) > MAX_TEXT:
        raise typer.BadParameter(f"longer than {MAX_TEXT} characters")


def check_output(path: Path, folder: bool) -> None:
    """``path`` can be written as an output ``folder`` (else a file): not an existing thing of the other kind,
    no file among its parents, the nearest existing folder above it writable."""
    try:
        if path.exists() and path.is_dir() != folder:
            raise typer.BadParameter(f"{path} is {'a file' if folder else 'a folder'}; expected "
                                     f"{'a folder' if folder else 'a file'}")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise typer.BadParameter(f"{parent} is not a folder, so {path} cannot be made")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise typer.BadParameter(f"{parent} is not writable")
    except OSError as err:  # e.g. a name longer than the file system allows
        raise typer.BadParameter(f"{path}: {err.strerror or err}") from None


def check_value(param: Any, value: Any) -> None:
    """Check one converted value of ``param`` (a typer parameter) against the rules of the module docstring."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_value(param, item)
        return
    info = param.type_descriptor.parameter_info
    if isinstance(value, float) and not math.isfinite(value):
        raise typer.BadParameter(f"expected a finite number, got {value}")
    if isinstance(value, (int, float)):
        low, high = info.min, info.max
        if (low is not None and value < low) or (high is not None and value > high):
            raise typer.BadParameter(f"expected a number in [{low}, {high}], got {value}")
    elif isinstance(value, Path):
        check_text(str(value))
        if not info.exists:
            check_output(value, folder=not info.file_okay)
    elif isinstance(value, str):
        check_text(value)


def _base(annotation: Any) -> Any:
    """``int`` for ``int | None``, ``str`` for ``list[str]``."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is not None and args:
        return _base(args[0])
    return annotation


def declared(param: Any, where: str) -> None:
    """Refuse (TypeError) a parameter that does not declare what its values may be (module docstring)."""
    kind = _base(param.type_descriptor.annotation)
    info = param.type_descriptor.parameter_info
    if kind in (int, float) and (info.min is None or info.max is None):
        raise TypeError(f"{where}: a number parameter must declare min= and max=")
    if kind is Path and not info.exists and info.file_okay == info.dir_okay:
        raise TypeError(f"{where}: a path parameter must be an input (exists=True) or an output folder "
                        "(file_okay=False) or file (dir_okay=False)")


def check_raw(param: Any, value: Any) -> None:
    """What the user typed for ``param``, before typer converts it: text rules for every value, and a whole number
    for an ``int`` (``12.0``, ``1_2`` or ``١٢`` are not), a plain decimal number for a ``float``."""
    if isinstance(value, (list, tuple)):
        for item in value:
            check_raw(param, item)
        return
    if not isinstance(value, str):
        return
    check_text(value)
    kind = _base(param.type_descriptor.annotation)
    if kind is int and not INT.fullmatch(value):
        raise typer.BadParameter(f"expected a whole number, got {value!r}")
    if kind is float and not FLOAT.fullmatch(value):
        raise typer.BadParameter(f"expected a number, got {value!r}")


def _checked(param: Any, callback: Any) -> Any:
    def run(ctx: Any, param_: Any, value: Any) -> Any:
        check_value(param_, value)
        return value if callback is None else callback(ctx, param_, value)

    return run


def _raw_checked(param: Any, process_value: Any) -> Any:
    def run(ctx: Any, value: Any) -> Any:
        check_raw(param, value)
        return process_value(ctx, value)

    return run


def command(app: typer.Typer) -> Any:
    """The click command of ``app`` with every parameter of every subcommand checked (module docstring)."""
    group = get_command(app)
    for name, sub in getattr(group, "commands", {}).items():
        for param in sub.params:
            if not hasattr(param, "type_descriptor"):
                continue
            declared(param, f"pisearch {name} {param.opts[0] if param.opts else param.name}")
            param.callback = _checked(param, param.callback)
            param.process_value = _raw_checked(param, param.process_value)
    return group


def parameters(group: Any) -> dict[str, list[Any]]:
    """Every subcommand of ``group`` with its typer parameters (the fuzz test walks these)."""
    return {name: [p for p in sub.params if hasattr(p, "type_descriptor")] for name, sub in group.commands.items()}
