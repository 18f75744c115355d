"""The generated parts of README.md and docs/: rendered from the code, so they cannot drift from it.

``python docs/generate.py`` rewrites every part; ``python docs/generate.py --check`` only names the stale ones (exit
1). A part sits between ``<!-- NAME: begin -->`` and ``<!-- NAME: end -->`` in its page (:data:`PARTS`):

* ``commands`` (README.md): one row per command of the typer app, linked to its reference;
* ``cli`` (docs/cli.md): every command's usage, help and options, walked from the click command tree;
* ``study-keys`` / ``space-keys`` (docs/studies.md): every key of the study and search-space files, nested blocks
  included, with its type, default and description (pydantic's ``Field(description=...)``);
* ``layers`` (docs/architecture.md): the layer diagram of ``tests/test_layers.py``'s table (that test checks it too).

``--check`` also names every relative link or ``#anchor`` of README.md, CHANGELOG.md and docs/*.md that does not
resolve (:func:`broken_links`; anchors as GitHub makes them from headings). tests/test_docs.py runs both checks.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python docs/generate.py"


def load_module(name: str, path: Path) -> types.ModuleType:
    """The module at ``path`` (a script or a test module, which are not packages) under ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cell(text: str, code: bool = False) -> str:
    """``text`` as one Markdown table cell: on one line, its pipes escaped and, unless it is ``code`` (shown between
    backticks), its ``<`` too (``runs/<name>`` would be read as an HTML tag)."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if code else text.replace("<", "&lt;")


# --- the command line -----------------------------------------------------------------------------------------

def command_group():
    """The click group of ``pisearch`` with every command registered (what the console script runs)."""
    from pisearch.cli import cli

    return cli()


def _context(command, name: str, parent=None):
    from typer._click.core import Context  # typer vendors click; the group's commands are its classes

    return Context(command, info_name=name, parent=parent)


def _usage(name: str, command) -> str:
    arguments = [p.metavar or p.name.upper() for p in command.params if p.param_type_name == "argument"]
    return " ".join([f"pisearch {name}", "[OPTIONS]", *arguments])


def _options(command, ctx) -> list[str]:
    rows = [p.get_help_record(ctx) for p in command.params]
    return ["| argument or option | what it is |", "| --- | --- |",
            *(f"| `{cell(names, code=True)}` | {cell(text)} |" for names, text in filter(None, rows)),
            "| `--help` | Show the command's help and exit. |"]


def render_cli() -> str:
    """Every command: usage, help and a table of its arguments and options (each with its type, range, default)."""
    group = command_group()
    root = _context(group, "pisearch")
    lines = ["```text", "pisearch [OPTIONS] COMMAND [ARGS]...", "```", "", *_options(group, root)]
    for name, command in sorted(group.commands.items()):
        lines += ["", f"## `pisearch {name}`", "", "```text", _usage(name, command), "```", "",
                  command.help.strip().replace("<", "&lt;"), "", *_options(command, _context(command, name, root))]
    return "\n".join(lines)


def first_sentence(text: str) -> str:
    """The first sentence of a help text (its first paragraph when that has no full stop)."""
    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    return paragraph.split(". ")[0].rstrip(".") + "."


def render_commands() -> str:
    """The README's command table: each command with the first sentence of its help, linked to docs/cli.md."""
    group = command_group()
    rows = [f"| [`pisearch {name}`](docs/cli.md#pisearch-{name}) | {cell(first_sentence(command.help))} |"
            for name, command in sorted(group.commands.items())]
    return "\n".join(["| command | what it does |", "| --- | --- |", *rows])


# --- the study and search-space files ---------------------------------------------------------------------------

def model_in(annotation) -> type[BaseModel] | None:
    """The pydantic model a field holds (itself, or inside ``X | None``), else None."""
    for kind in (annotation, *typing.get_args(annotation)):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def type_text(annotation) -> str:
    """A field's type in the file's words: ``int``, ``list of str``, ``a | b``, ``choice``, ``block``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(map(str, args))
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {type_text(args[0])}"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "block"
    name = getattr(annotation, "__name__", str(annotation))
    return "choice" if name == "Choice" else name


def yaml_text(value) -> str:
    """A default as the study file writes it (``null``, ``true``, ``[accuracy, relus]`` in JSON's flow form)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def default_text(field: FieldInfo) -> str:
    """``required``, ``the keys below`` for a block with defaults, else the default in the file's notation (as
    Markdown code)."""
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default is PydanticUndefined else field.default
    if isinstance(value, BaseModel):
        return "the keys below"
    adapter = TypeAdapter(typing.Annotated[field.annotation, *field.metadata]) if field.metadata else None
    return f"`{cell(yaml_text(adapter.dump_python(value, mode='json') if adapter else value), code=True)}`"


def key_rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(key, type, default, description)`` of every key of ``model``, a nested block's keys after the block's."""
    rows = []
    for name, field in model.model_fields.items():
        key = prefix + name
        if not field.description:
            raise ValueError(f"{model.__name__}.{name} has no description= (every key of the docs needs one)")
        rows.append((key, type_text(field.annotation), default_text(field), field.description))
        nested = model_in(field.annotation)
        if nested is not None:
            rows += key_rows(nested, key + ".")
    return rows


def key_table(model: type[BaseModel]) -> str:
    """A Markdown table of :func:`key_rows`."""
    return "\n".join(["| key | type | default | what it is |", "| --- | --- | --- | --- |",
                      *(f"| `{key}` | {kind} | {default} | {cell(text)} |"
                        for key, kind, default, text in key_rows(model))])


def render_study_keys() -> str:
    from pisearch.study import StudyConfig

    return key_table(StudyConfig)


def render_space_keys() -> str:
    from pisearch.space.schema import SpaceConfig  # the file format itself; pisearch.space offers no model

    return key_table(SpaceConfig)


def render_layers() -> str:
    return load_module("layer_rules", ROOT / "tests" / "test_layers.py").diagram()


# --- pages --------------------------------------------------------------------------------------------------------

PARTS: dict[str, tuple[str, Callable[[], str]]] = {
    "commands": ("README.md", render_commands),
    "cli": ("docs/cli.md", render_cli),
    "study-keys": ("docs/studies.md", render_study_keys),
    "space-keys": ("docs/studies.md", render_space_keys),
    "layers": ("docs/architecture.md", render_layers),
}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def current(text: str, name: str) -> str:
    """The part ``name`` as ``text`` holds it (ValueError when its markers are missing)."""
    begin, end = markers(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"{name}: expected one '{begin}' and one '{end}'")
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def replaced(text: str, name: str, part: str) -> str:
    """``text`` with the part ``name`` replaced by ``part``."""
    begin, end = markers(name)
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{part}\n{end}{rest.split(end, 1)[1]}"


def stale(root: Path = ROOT) -> list[str]:
    """The parts whose page differs from what the code renders, as ``page (part)``."""
    return [f"{page} ({name})" for name, (page, render) in PARTS.items()
            if current((root / page).read_text(), name) != render()]


def write(root: Path = ROOT) -> list[str]:
    """Rewrite every stale part in place; returns the pages changed."""
    changed = []
    for name, (page, render) in PARTS.items():
        path = root / page
        text = path.read_text()
        if current(text, name) != (part := render()):
            path.write_text(replaced(text, name, part))
            changed.append(f"{page} ({name})")
    return changed


# --- links ----------------------------------------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code, where brackets are not links and # is not a heading."""
    return CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text (link targets, tags, backticks and emphasis dropped), lower case,
    every character but letters, digits, ``_``, ``-`` and spaces removed, spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown page; a repeated heading gets ``-1``, ``-2``, … as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(pages: list[Path], root: Path = ROOT) -> list[str]:
    """``page: target (why)`` for every relative link of ``pages`` whose file (inside ``root``) or ``#anchor`` is
    missing; web and mail links are not followed."""
    broken = []
    for page in pages:
        for target in LINK.findall(prose(page.read_text())):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page.resolve()
            if not file.is_relative_to(root.resolve()) or not file.exists():
                broken.append(f"{page.relative_to(root)}: {target} (no such file)")
            elif anchor and (file.suffix != ".md" or anchor not in anchors(file.read_text())):
                broken.append(f"{page.relative_to(root)}: {target} (no heading with anchor #{anchor})")
    return broken


def pages(root: Path = ROOT) -> list[Path]:
    """The pages whose links are checked: README.md, CHANGELOG.md and docs/*.md."""
    return [root / "README.md", root / "CHANGELOG.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="name the stale parts and the broken links and exit 1; "
                        "change nothing")
    args = parser.parse_args(argv)
    if args.check:
        found = [f"stale: {p} (run {COMMAND})" for p in stale()] + [f"broken link: {b}" for b in broken_links(pages())]
        print("\n".join(found) or "docs are current; every link resolves")
        return 1 if found else 0
    print("\n".join(f"rewrote {p}" for p in write()) or "docs are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
