"""Property-based walk of the command line itself: every command and every parameter, read from the typer app
(``pisearch.cli.cli()``), fed bad values of its declared kind, and every file argument fed random bytes,
truncations of a valid file, a folder and an unreadable file. Every case must exit 2 with at most 3 lines on
stderr and no traceback, raise nothing out of ``main`` and leave the case folder (output folders, storages,
exports) exactly as it was.

Only the valid invocation each command starts from (:data:`BASE`) is kept by hand: a command added without one
fails :func:`test_every_command_has_a_base_invocation`; its options are then walked without anyone listing them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
from collections import Counter
from contextlib import chdir
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import typer
from typer.testing import CliRunner

import pisearch.cli
from pisearch.cli.values import MAX_TEXT, command, parameters
from pisearch.spec import net
from pisearch.study import load_study_config, run_study

from tests.test_study import TINY_STUDY

EXAMPLES = int(os.environ.get("PISEARCH_FUZZ_EXAMPLES", "40"))  # generated cases per command
DERANDOMIZE = bool(os.environ.get("CI"))  # the same cases on every CI run; new ones on each local run
# a valid invocation of each command; {x} are paths in the case folder (see template)
BASE = {
    "count": ["count", "{spec}"],
    "rule": ["rule", "--budget", "50000"],
    "run": ["run", "{study}", "--storage", "{db}", "--out", "{out}", "--no-progress"],
    "create": ["create", "{study}", "--storage", "{db}", "--out", "{out}"],
    "worker": ["worker", "--storage", "{db}", "--study", "t", "--out", "{out}", "--no-progress"],
    "dashboard": ["dashboard", "{rundir}", "--out", "{out}/d.html"],
    "export": ["export", "{rundir}", "--trial", "0", "--out", "{out}"],
    "linearize": ["linearize", "{model}", "--out", "{out}", "--method", "snl", "--budget", "50%"],
    "measure": ["measure", "{model}", "--protocol", "semi2k"],
}
CLI = pisearch.cli.cli()
COMMANDS = parameters(CLI)
CASES: Counter[str] = Counter()
SQLITE_PAGE = 4096
SQLITE = "sqlite:///"


def study_text() -> str:
    """A valid study file whose every proper prefix is invalid: its last line, the required ``dataset:``, is a
    flow mapping (a prefix cuts it open or drops it)."""
    body = {**TINY_STUDY, "n_trials": 1, "seed": 0, "keep_weights": True}
    dataset = body.pop("dataset")
    return yaml.safe_dump(body) + f"dataset: {{name: {dataset['name']}, resolution: {dataset['resolution']}}}\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The case folder every case starts from: a study file, a trained run (run/study.db with trial 0's weights),
    a SQLite storage, an export of trial 0 (model/), a spec file, a regular file f and an unreadable entry."""
    root = tmp_path_factory.mktemp("fuzz-template")
    (root / "s.yaml").write_text(study_text())
    config, space = load_study_config(root / "s.yaml")
    run_study(config, space, out_dir=root / "run", progress=False)
    with sqlite3.connect(root / "run" / "study.db") as con:  # no free pages: any truncation cuts what is read
        con.execute("VACUUM")
    shutil.copy(root / "run" / "study.db", root / "study.db")
    code, err = invoke(root, ["export", "run", "--trial", "0", "--out", "model"])
    assert code == 0, err
    (root / "spec.json").write_text(net("resnet18").to_json())
    (root / "f").write_text("a regular file\n")
    return root


def fill(args: list[str], case: Path) -> list[str]:
    names = {"spec": "spec.json", "study": "s.yaml", "db": f"sqlite:///{case / 'study.db'}", "out": "out",
             "rundir": "run", "model": "model"}
    return [a.format(**names) for a in args]


def invoke(folder: Path, args: list[str]) -> tuple[int, str]:
    """``pisearch ARGS`` in-process in ``folder`` (``pisearch.cli.main``): (exit code, stderr). Any exception but
    SystemExit escapes, failing the test with its traceback."""
    with chdir(folder), CliRunner().isolation() as (_, err, _):
        try:
            pisearch.cli.main(args)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        sys.stderr.flush()
        text = err.getvalue().decode(errors="replace")
    return code, text


def unreadable(path: Path) -> None:
    """Put something at ``path`` that exists but cannot be read: mode 000 (a normal user), a Unix socket (root,
    who reads every file whatever its mode)."""
    if os.geteuid() != 0:
        path.write_text("secret")
        path.chmod(0)
        return
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def damage(path: Path, change: str, data: Any, content: bytes) -> None:
    """Replace the file at ``path`` (whose bytes were ``content``) as ``change`` says: other ``bytes`` (``data``),
    a truncated copy (its first ``data`` bytes), a ``folder``, or something ``unreadable``."""
    path.unlink()
    if change == "bytes":
        path.write_bytes(data)
    elif change == "truncate":
        path.write_bytes(content[:data])
    elif change == "folder":
        path.mkdir()
    else:
        unreadable(path)


def snapshot(folder: Path) -> dict[str, Any]:
    """Every entry under ``folder``: a SQLite storage by its SQL dump, another file by its hash, a folder by name."""
    out: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_dir() or not path.is_file():
            out[rel] = "dir" if path.is_dir() else "other"
            continue
        data = path.read_bytes()
        out[rel] = hashlib.sha256(data).hexdigest()
        if path.suffix == ".db" and data.startswith(b"SQLite format 3"):
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
                    out[rel] = list(con.iterdump())
            except sqlite3.DatabaseError:  # a broken storage (a case's): its bytes
                pass
    return out


# ---- bad values, by what a parameter declares ------------------------------------------------------------------
TEXT_BAD = st.sampled_from(["", "   ", "a\x00b", "two\nlines", "tab\there", "x" * (MAX_TEXT + 1)])
NOT_A_NUMBER = st.sampled_from(["abc", "", " ", "1,5", "--", "0x1g", "½", "١٢", "²"])


def number_bad(param: Any) -> st.SearchStrategy[str]:
    info = param.type_descriptor.parameter_info
    low, high = info.min, info.max
    kind = param.type_descriptor.annotation
    is_int = kind is int or "int" in str(kind)
    below = st.integers(1, 10**40).map(lambda d: low - d) if is_int else st.floats(1e-3, 1e300).map(lambda d: low - d)
    above = st.integers(1, 10**40).map(lambda d: high + d) if is_int else st.floats(1e-3, 1e300).map(
        lambda d: high * 2 + d)
    bad = [below.map(str), above.map(str), NOT_A_NUMBER,
           st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e400", str(10**400)])]
    if is_int:
        bad.append(st.floats(0.1, 1e6).filter(lambda x: not x.is_integer()).map(str))  # a float for an int
    return st.one_of(bad)


def path_bad(param: Any) -> st.SearchStrategy[str]:
    info = param.type_descriptor.parameter_info
    kinds = ["", "a\x00b", "n" * 300 + "/x", "f/below-a-file", "/dev/null/x"]
    if info.exists:
        kinds += ["missing", "run" if not info.dir_okay else "f", "unreadable"]
    else:
        kinds += ["f" if not info.file_okay else "run"]
    return st.sampled_from(kinds)


def file_bad(target: Path) -> st.SearchStrategy[tuple[str, Any]]:
    """What to put in place of the valid file ``target`` (in the template): random bytes, a proper prefix of it,
    a folder, something unreadable."""
    size = len(target.read_bytes().rstrip())
    shortest = 0
    if target.suffix == ".db":  # SQLite reads a file cut within its last page: cut one page at least; an empty
        size, shortest = size - SQLITE_PAGE, 1  # file is a valid new database, where a command may write
    return st.one_of(st.tuples(st.just("bytes"), st.binary(min_size=shortest, max_size=3000)),
                     st.tuples(st.just("truncate"), st.integers(shortest, max(shortest, size - 1))),
                     st.tuples(st.just("folder"), st.none()), st.tuples(st.just("unreadable"), st.none()))


def cases(name: str, template: Path) -> st.SearchStrategy[tuple[str, Any]]:
    """(what, how) for command ``name``: ("value", (option, bad value)) or ("file", (relative path, change))."""
    base = fill(BASE[name], template)
    options: list[st.SearchStrategy] = []
    files = []
    for param in COMMANDS[name]:
        kind = param.type_descriptor.annotation
        info = param.type_descriptor.parameter_info
        flag = param.opts[0]
        if getattr(param, "is_flag", False):
            continue
        if info.min is not None:
            bad = number_bad(param)
        elif "Path" in str(kind):
            bad = path_bad(param)
        else:
            bad = TEXT_BAD
        options.append(st.tuples(st.just(flag), bad))
        if not flag.startswith("-"):  # a positional argument: mutate the file (or the files of the folder) it names
            positional = [p for p in COMMANDS[name] if not p.opts[0].startswith("-")]
            target = template / base[1 + positional.index(param)]
            inside = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
            files += [st.tuples(st.just(str(p.relative_to(template))), file_bad(p)) for p in inside
                      if p.suffix in (".json", ".yaml", ".db", ".safetensors")]
    for value in base:  # a storage named by URL is a file the command reads too
        if value.startswith(SQLITE) and Path(value.removeprefix(SQLITE)).is_file():
            path = Path(value.removeprefix(SQLITE))
            files.append(st.tuples(st.just(str(path.relative_to(template))), file_bad(path)))
    strategies = [st.tuples(st.just("value"), st.one_of(options))]
    if files:
        strategies.append(st.tuples(st.just("file"), st.one_of(files)))
    return st.one_of(strategies)


def apply(case: Path, name: str, what: str, how: Any) -> list[str]:
    """The arguments of one case, after changing the case folder as the case says."""
    args = fill(BASE[name], case)
    if what == "file":
        rel, (change, data) = how
        path = case / rel
        damage(path, change, data, path.read_bytes())
        return args
    flag, value = how
    if "Path" in str(next(p for p in COMMANDS[name] if p.opts[0] == flag).type_descriptor.annotation):
        if value == "unreadable":
            unreadable(case / "unreadable")
    if not flag.startswith("-"):  # positional: replace the base value at its position
        positional = [p.opts[0] for p in COMMANDS[name] if not p.opts[0].startswith("-")]
        args[1 + positional.index(flag)] = value
    elif flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    return args


def check_case(template: Path, name: str, what: str, how: Any) -> None:
    case = Path(tempfile.mkdtemp(prefix="case-"))
    try:
        shutil.copytree(template, case, dirs_exist_ok=True, symlinks=True)
        args = apply(case, name, what, how)
        before = snapshot(case)
        code, err = invoke(case, args)
        lines = err.strip().splitlines()
        assert code == 2, (args, err)
        assert 1 <= len(lines) <= 3 and lines[0].startswith("error: "), (args, err)
        assert "Traceback" not in err, (args, err)
        assert snapshot(case) == before, args
        CASES[name] += 1
    finally:
        shutil.rmtree(case, ignore_errors=True)


def test_every_command_has_a_base_invocation():
    assert sorted(COMMANDS) == sorted(BASE)


@pytest.mark.parametrize("name", ["count", "rule", "create", "dashboard", "export"])
def test_base_invocations_are_valid(template, tmp_path, name):
    """The bases are valid (the cheap ones, run here): a refusal in a case comes from the case's bad value."""
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    code, err = invoke(tmp_path, fill(BASE[name], tmp_path))
    assert code == 0, err


@pytest.mark.parametrize("name", sorted(BASE))
def test_bad_values_and_files_exit_2_one_line_nothing_changed(template, name):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=cases(name, template))
    def walk(case):
        check_case(template, name, *case)

    walk()


def test_generated_cases_counted():
    """Runs last: the cases of every command were generated and checked (at least 200 in all)."""
    if set(CASES) != set(BASE):
        pytest.skip("run with the whole file to count the cases of every command")
    print("\ngenerated cases per command: " + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items())) +
          f"; total {sum(CASES.values())}")
    assert sum(CASES.values()) >= min(200, 8 * EXAMPLES)


def test_an_option_that_does_not_declare_its_values_cannot_be_built():
    """The next option added is covered without anyone remembering to: a number without a range, or a path that
    is neither an input nor an output of one kind, stops the app from building (every CLI test then fails)."""
    for option in (typer.Option(None, "--n", min=1), typer.Option(None, "--n", max=3)):
        def with_int(n: int = option) -> None:
            pass

        app = typer.Typer()
        app.command()(with_int)
        app.command()(lambda: None)
        with pytest.raises(TypeError, match="must declare min= and max="):
            command(app)

    def with_path(out: Path = typer.Option(None, "--out")) -> None:
        pass

    app = typer.Typer()
    app.command()(with_path)
    app.command("other")(lambda: None)
    with pytest.raises(TypeError, match="must be an input"):
        command(app)
