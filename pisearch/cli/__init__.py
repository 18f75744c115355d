"""Command-line interface: ``pisearch COMMAND …``. Every module here registers one or more commands."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

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
    except Exception as err:  # typer's vendored click raises usage errors of a private class
        ctx, message = getattr(err, "ctx", None), getattr(err, "format_message", None)
        if ctx is None or message is None:
            raise
        if not message():  # no arguments at all: show the help
            print(ctx.get_help(), file=sys.stderr)
        else:
            print(f"error: {ctx.command_path}: {message()} (see '{ctx.command_path} --help')", file=sys.stderr)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
