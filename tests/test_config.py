import pytest
from pydantic import BaseModel, ConfigDict, Field

from pisearch.config import load
from pisearch.errors import UserError


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
