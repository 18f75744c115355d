"""Command-line interface: ``pisearch COMMAND …``. Every module here registers one or more commands."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from typer._click.exceptions import UsageError  # typer vendors click; its usage errors are of this class

from pisearch.errors import UserError


def main() -> None:
    """Entry point of the ``pisearch`` console script. A :class:`UserError` or a usage error prints one line
    (``error: …``) on stderr and exits 2; never a traceback."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "app":
            importlib.import_module(f"{__name__}.{mod.name}")
    from pisearch.cli.app import app

    try:
        code = app(standalone_mode=False)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except typer.Abort:
        sys.exit(1)
    except UsageError as err:  # a bad option value, a missing argument, an unknown command
        if err.ctx is None:
            raise
        if not err.format_message():  # no arguments at all: show the help
            print(err.ctx.get_help(), file=sys.stderr)
        else:
            path = err.ctx.command_path
            print(f"error: {path}: {err.format_message()} (see '{path} --help')", file=sys.stderr)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
