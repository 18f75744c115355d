"""Command-line interface: ``pisearch COMMAND …``. Every module here registers one or more commands."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import typer
from typer._click.exceptions import UsageError  # typer vendors click; its usage errors are of this class

from pisearch.errors import UserError


def cli(only: str | None = None) -> Any:
    """The click command of every ``pisearch`` command, each of its values checked (:mod:`pisearch.cli.values`);
    ``only``: the name of one command (its module), when the command line names it, so ``pisearch count`` does not
    pay for importing what ``run`` needs (torch, Optuna, pandas: ~5 s)."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.name not in ("app", "__main__", "values")]
    for name in [only] if only in names else names:
        importlib.import_module(f"{__name__}.{name}")
    from pisearch.cli.app import app
    from pisearch.cli.values import command

    return command(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``pisearch`` console script (``argv``: the arguments, default ``sys.argv[1:]``). A
    :class:`UserError` or a usage error prints one line (``error: …``) on stderr and exits 2; never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = cli(args[0] if args else None).main(args=args, prog_name="pisearch", standalone_mode=False)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except typer.Abort:
        sys.exit(1)
    except UsageError as err:  # a bad option value, a missing argument, an unknown command
        if err.ctx is None:
            print(f"error: pisearch: {err.format_message()}", file=sys.stderr)
        elif not err.format_message():  # no arguments at all: show the help
            print(err.ctx.get_help(), file=sys.stderr)
        else:
            path = err.ctx.command_path
            print(f"error: {path}: {err.format_message()} (see '{path} --help')", file=sys.stderr)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
