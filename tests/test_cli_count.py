import json
import subprocess
import sys

import pytest

from pisearch.spec import net


def run_cli(*args):
    return subprocess.run([sys.executable, "-c", "from pisearch.cli import main; main()", *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize("res, relus", [(32, 557_056), (64, 2_228_224)])
def test_count_resnet18_json(res, relus):
    out = run_cli("count", "resnet18", "--resolution", str(res), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["relus"] == relus
    assert {"relus", "polys", "macs", "params", "sites"} <= set(data)
    assert sum(s["relus"] for s in data["sites"]) == relus


def test_count_spec_file_and_table(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(net("resnet18", convention="B").to_json())
    out = run_cli("count", str(path))
    assert out.returncode == 0, out.stderr
    assert "491,520" in out.stdout


@pytest.mark.parametrize("content, field", [
    ('{"stages": [{"depth": -1, "width": 4}]}', "stages[0].depth"),
    ('{"stages": [', "not valid JSON"),
    ('{"stages": [{"depth": 1, "width": 4}], "acts": {"stem.act": 3}}', "acts.stem.act"),
])
def test_malformed_spec_one_line_exit_2(tmp_path, content, field):
    path = tmp_path / "bad.json"
    path.write_text(content)
    out = run_cli("count", str(path))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "bad.json" in lines[0]
