from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from pisearch.config import load
from pisearch.errors import UserError
from pisearch.rules import deepreshape
from pisearch.study import load_study_config


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: list[int] = Field(default_factory=list)


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: Inner = Inner()


@pytest.mark.parametrize("text, message", [
    ("name: [", "(file): not valid YAML: "),
    ("- a\n- b", "expected a mapping"),
    ("name: x\ncolour: red", "colour: unknown key"),
    ("name: x\ninner: {depth: [1, two]}", "inner.depth[1]: "),
    ("inner: {}", "name: missing required key"),
])
def test_errors_name_file_key_reason(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load(Outer, path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="cannot read it"):
        load(Outer, tmp_path / "nope.yaml")


def test_valid(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ninner: {depth: [1, 2]}")
    assert load(Outer, path).inner.depth == [1, 2]


def test_documented_example_study_is_valid(tmp_path, monkeypatch):
    """The annotated study file of docs/studies.md loads as written (keys, values, its space path from the repository
    root), so its documentation of the study format cannot drift from the validated model."""
    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "studies.md").read_text()
    block = page.split("## A study file", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    (tmp_path / "study.yaml").write_text(block)
    (tmp_path / "my_arch.json").write_text(deepreshape(3000, resolution=16).spec.to_json())  # the example's init.specs
    monkeypatch.chdir(root)
    config, space = load_study_config(tmp_path / "study.yaml")
    assert config.name == "example" and space.resolve() == root / "search_spaces" / "quickstart.yaml"
    assert config.budget.bins and config.baselines.deepreshape and len(config.init.specs) == 1
