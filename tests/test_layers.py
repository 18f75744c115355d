"""The layers pisearch keeps, read from the code itself: every import of every module (ast), checked against one
table. The layer diagram of docs/architecture.md is rendered from the same table, so the picture and the code cannot
drift.

Rules:
1. a module of layer X imports another layer Y only where ``LAYERS[X]`` lists Y (``errors`` and ``config`` are
   leaves every layer may import);
2. it imports another layer through that layer's face (``from pisearch.cost import count``), never a submodule
   (``pisearch.cost.count``), so each package decides what it offers;
3. Optuna is imported by ``study`` only, Optuna's storages by ``study.store`` only, and no module outside
   ``study.store`` tests a storage URL's scheme;
4. no module is longer than ``MAX_LINES``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pisearch"
LEAVES = ("errors", "config")
# layer -> the layers it may import (besides the leaves), from the top of the stack down.
LAYERS: dict[str, tuple[str, ...]] = {
    "cli": ("study", "mpc", "report", "linearize", "rules", "space", "train", "data", "models", "cost", "spec"),
    "study": ("mpc", "report", "linearize", "rules", "space", "train", "data", "models", "cost", "spec"),
    "mpc": ("report", "train", "data", "models", "cost", "spec"),  # measured private inference (SPU)
    "report": ("models", "cost", "spec"),
    "linearize": ("train", "data", "models", "cost", "spec"),
    "rules": ("cost", "spec"),
    "space": ("cost", "spec"),
    "train": ("data", "models", "spec"),
    "models": ("spec",),
    "cost": ("spec",),
    "data": (),
    "spec": (),
    "__init__": ("report",),  # the package root: pisearch.load() reads an export folder
    "__main__": ("cli",),  # python -m pisearch
}
LEAF_IMPORTS = {"errors": (), "config": ("errors",)}
OPTUNA_LAYERS = ("study",)
STORAGE_MODULES = "study/store/"
URL_SCHEME = re.compile(r"^(sqlite|journal|postgres|mysql)|://")
MAX_LINES = 400
DIAGRAM_PAGE = ROOT / "docs" / "architecture.md"
DIAGRAM_BEGIN, DIAGRAM_END = "<!-- layers: begin -->", "<!-- layers: end -->"


def layer_of(rel: Path) -> str:
    """``spec`` for ``spec/core.py``, ``errors`` for ``errors.py``, ``__init__`` for the package root."""
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import in a module, function-level ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def violations(sources: dict[str, str]) -> list[str]:
    """Every broken rule (module docstring) in ``sources`` (path relative to ``pisearch/`` → source text)."""
    found = []
    for path, text in sorted(sources.items()):
        rel = Path(path)
        layer = layer_of(rel)
        allowed = set(LEAF_IMPORTS.get(layer, (*LEAVES, *LAYERS.get(layer, ()))))
        tree = ast.parse(text)
        if len(text.splitlines()) > MAX_LINES:
            found.append(f"{path}: {len(text.splitlines())} lines (more than {MAX_LINES})")
        for line, module in imports(tree):
            parts = module.split(".")
            where = f"{path}:{line}: imports {module}"
            if parts[0] == "optuna" and layer not in OPTUNA_LAYERS:
                found.append(f"{where} (only {', '.join(OPTUNA_LAYERS)} may import optuna)")
            if module.startswith("optuna.storages") and not path.startswith(STORAGE_MODULES):
                found.append(f"{where} (only {STORAGE_MODULES} may open Optuna storages)")
            if parts[0] != "pisearch" or len(parts) == 1:
                continue
            target = parts[1]
            if target == layer:
                continue
            if target not in allowed:
                found.append(f"{where} ({layer} may import: {', '.join(sorted(allowed)) or 'nothing'})")
            elif len(parts) > 2:
                found.append(f"{where} (import {'.'.join(parts[:2])}, the package's face, not its submodules)")
        if not path.startswith(STORAGE_MODULES):
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("startswith", "removeprefix") and node.args
                        and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                        and URL_SCHEME.search(node.args[0].value)):
                    found.append(f"{path}:{node.lineno}: tests a storage URL's scheme (only {STORAGE_MODULES} may)")
    return found


def package_sources() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text() for p in PACKAGE.rglob("*.py")}


def diagram() -> str:
    """The layer diagram of docs/architecture.md, rendered from ``LAYERS``."""
    width = max(map(len, LAYERS))
    lines = [f"{layer:<{width}} → {', '.join(below) or '(nothing of ours)'}" for layer, below in LAYERS.items()
             if layer not in ("__init__", "__main__")]
    lines.append(f"{'leaves':<{width}} : {', '.join(LEAVES)} — every layer may import them "
                 f"(config imports errors only)")
    return "\n".join(["```text", *lines, "```"])


def test_every_import_keeps_the_layers():
    sources = package_sources()
    assert len(sources) > 50  # the whole package was read
    assert violations(sources) == []


@pytest.mark.parametrize("path, line, broken", [
    ("spec/core.py", "from pisearch.study import run_study", "spec may import"),
    ("models/resnet.py", "import optuna", "may import optuna"),
    ("study/runner.py", "from optuna.storages import RDBStorage", "may open Optuna storages"),
    ("cli/run.py", "from pisearch.study.runner import run_study", "the package's face"),
    ("report/export.py", "def f():\n    from pisearch.study import open_run", "report may import"),
    ("study/records.py", "ok = url.startswith('sqlite:///')", "storage URL's scheme"),
    ("errors.py", "from pisearch.config import validate", "errors may import: nothing"),
    ("cost/count.py", "\n" * MAX_LINES, "more than 400"),
])
def test_a_broken_rule_is_reported(path, line, broken):
    sources = package_sources()
    sources[path] = sources[path] + "\n" + line + "\n"
    found = violations(sources)
    assert len(found) == 1 and found[0].startswith(path) and broken in found[0]


def test_the_architecture_page_draws_the_same_layers():
    page = DIAGRAM_PAGE.read_text()
    block = page.split(DIAGRAM_BEGIN, 1)[1].split(DIAGRAM_END, 1)[0].strip()
    assert block == diagram(), "docs/architecture.md's layer diagram is out of date: run python docs/generate.py"
