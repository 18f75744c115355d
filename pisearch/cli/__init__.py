"""Command-line interface: ``pisearch COMMAND …``. Every module here registers one or more commands."""

from __future__ import annotations

import importlib
import pkgutil
import sys

from pisearch.errors import UserError


def main() -> None:
    """Entry point of the ``pisearch`` console script; a :class:`UserError` prints one line and exits 2."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "app":
            importlib.import_module(f"{__name__}.{mod.name}")
    from pisearch.cli.app import app

    try:
        app()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
