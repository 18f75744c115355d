"""Study, search-space and spec files are read as strictly as YAML 1.2 reads a mapping: a key set twice anywhere is
one UserError line naming the file, the key and both lines; anchors and aliases that expand a file beyond a sane
size, or into itself, are refused before anything walks the data; one loader (pisearch.config) reads every kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pisearch.config import MAX_EXPANDED_VALUES, parse_json, parse_yaml, read_json, read_yaml
from pisearch.errors import SpecError, UserError
from pisearch.space import SearchSpace
from pisearch.spec import ArchSpec, net
from pisearch.study import load_study_config

from tests.test_study import TINY, TINY_STUDY

ROOT = Path(__file__).resolve().parents[1]
# Nine aliases of nine aliases …: 9**8 (43 million) strings from eight lines.
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefg", "bcdefgh"))


def test_a_study_file_that_sets_a_key_twice_names_the_key_and_both_lines(tmp_path):
    """The issue's copy-paste leftover: n_trials at the top and again at the bottom."""
    body = yaml.safe_dump({k: v for k, v in TINY_STUDY.items() if k != "name"}, sort_keys=False)
    path = tmp_path / "s.yaml"
    path.write_text(f"name: t\nn_trials: 3\n{body}n_trials: 30\n")
    last = len(path.read_text().splitlines())
    with pytest.raises(UserError) as err:
        load_study_config(path)
    assert str(err.value) == f"{path}: n_trials: duplicate key (lines 2 and {last}; a key may appear once)"


@pytest.mark.parametrize("text, where, lines", [
    ("resolution: 16\nwidths:\n  base: [4, 8]\n  base: [4]\n", "widths.base", (3, 4)),
    ("resolution: 16\nstages:\n  depth:\n    - {low: 1, high: 2}\n    - {low: 1, low: 2}\n", "stages.depth[1].low",
     (5, 5)),
    ("resolution: 16\n'resolution': 32\n", "resolution", (1, 2)),       # quoting does not make another key
    ("true: 1\n1: 2\n", "1", (1, 2)),                                   # YAML 1.1's true is 1 to Python
])
def test_a_space_file_that_sets_a_key_twice_anywhere(tmp_path, text, where, lines):
    path = tmp_path / "sp.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        SearchSpace.load(path)
    assert str(err.value) == f"{path}: {where}: duplicate key (lines {lines[0]} and {lines[1]}; a key may appear once)"


def test_anchors_aliases_and_merge_keys_that_expand_little_still_load(tmp_path):
    """Anchors are useful in a space file; a merge (``<<``) may override the keys it brings in."""
    text = TINY.read_text().replace("- {low: 1, high: 2}", "- &d {low: 1, high: 2}", 1)
    text = text.replace("- {low: 1, high: 2}", "- *d", 1)
    assert "&d" in text and "*d" in text
    (tmp_path / "sp.yaml").write_text(text)
    assert SearchSpace.load(tmp_path / "sp.yaml").to_dict() == SearchSpace.load(TINY).to_dict()
    assert parse_yaml("a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  k: 3\n", "m.yaml") == {
        "a": {"k": 1, "j": 2}, "b": {"k": 3, "j": 2}}


@pytest.mark.parametrize("text, message", [
    (BOMB, f"(file): its anchors and aliases expand it to more than {MAX_EXPANDED_VALUES:,} values; refusing it"),
    ("a: &a [1, *a]\n", "a[1]: an alias refers to a value that contains it"),
    ("a: &a {b: *a}\n", "a.b: an alias refers to a value that contains it"),
    ("a: " + "[" * 3000 + "]" * 3000 + "\n", "(file): nested too deeply"),
], ids=["bomb", "list in itself", "mapping in itself", "deep"])
def test_alias_bombs_self_references_and_deep_nesting_are_refused(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        read_yaml(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_study_file_with_an_alias_bomb_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY_STUDY, "n_trials": 2}) + BOMB)  # keys a … h: checked before validation
    with pytest.raises(UserError, match=r"s\.yaml: \(file\): its anchors and aliases expand it to more than"):
        load_study_config(path)


def test_a_spec_file_that_sets_a_key_twice_names_the_key_and_both_lines(tmp_path):
    text = net("resnet18").to_json(indent=1).replace('\n "stem"', '\n "resolution": 64,\n "stem"', 1)
    lines = text.splitlines()
    first = lines.index(' "resolution": 64,') + 1
    second = next(i for i, line in enumerate(lines, 1) if line.startswith(' "resolution": 32'))
    with pytest.raises(SpecError) as err:
        ArchSpec.from_json(text, source="arch.json")
    assert str(err.value) == (f"arch.json: resolution: duplicate key (lines {min(first, second)} and "
                              f"{max(first, second)}; a key may appear once)")


@pytest.mark.parametrize("text, where, lines", [
    ('{"a": 1,\n "a": 2}', "a", (1, 2)),
    ('{"s": [{"k": "x"},\n  {"k": 1, "j": {"q": [1, "\\"q\\": 2"],\n "q": 3}}]}', "s[1].j.q", (2, 3)),
    ('{"a\\"b": 1, "a\\"b": 2}', 'a"b', (1, 1)),
])
def test_json_that_repeats_a_key_names_its_path_and_lines(tmp_path, text, where, lines):
    path = tmp_path / "metrics.json"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        read_json(path)
    assert str(err.value) == f"{path}: {where}: duplicate key (lines {lines[0]} and {lines[1]}; a key may appear once)"
    assert parse_json('{"a": {"b": 1}, "b": {"a": 2}}', "x") == {"a": {"b": 1}, "b": {"a": 2}}  # same name, two objects


def test_yaml_and_json_files_are_parsed_in_one_place():
    """Every YAML parse and every JSON file read of pisearch goes through pisearch.config (parse_yaml, parse_json);
    the other json.loads calls read what pisearch itself stored (trial and study attrs)."""
    problems = []
    for path in sorted((ROOT / "pisearch").rglob("*.py")):
        if path == ROOT / "pisearch" / "config.py":
            continue
        text = path.read_text()
        problems += [f"{path.name}: {m}" for m in re.findall(r"yaml\.(?:safe_load|load|compose|SafeLoader)\w*", text)]
        problems += [f"{path.name}: {m}" for m in re.findall(r"json\.load\(|json\.loads\([^)]*read_\w+\(", text)]
    assert problems == []
