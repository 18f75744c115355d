"""Rank agreement of a study's fidelities (fidelity.json, run summary, compare notes, dashboard) and the
``fidelity_check:`` stage (issue #20, parts 2 and 3)."""

import json
import sqlite3
import sys

import optuna
import pandas as pd
import pytest

from pisearch.cli import main
from pisearch.errors import UserError
from pisearch.report import kendall_tau_b
from pisearch.study import load_study_config, run_study
from pisearch.study.dashboard_data import load_dashboard_data
from tests.test_study import write_study

DIGITS = {"name": "digits", "resolution": 16}


def cli(monkeypatch, *args) -> int:
    monkeypatch.setattr(sys, "argv", ["pisearch", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code


@pytest.mark.parametrize("check, message", [
    ({"n": 1, "level": {"epochs": 3}}, r"fidelity_check\.n: Input should be greater than or equal to 2"),
    ({"n": 8}, r"fidelity_check\.level: missing required key"),
    ({"level": {}}, r"fidelity_check\.level: .*at least 1 item"),
    ({"level": {"epoch": 3}}, r"fidelity_check: level: epoch: unknown key \(allowed: epochs, "),
    ({"level": {"epochs": 0}}, r"fidelity_check: level: epochs: Input should be greater than or equal to 1"),
    ({"level": {"epochs": 1}}, r"fidelity_check: level: changes nothing of level 0's fidelity"),
    ({"level": {"epochs": 3}, "size": 2}, r"fidelity_check\.size: unknown key \(allowed: n, level\)"),
])
def test_bad_fidelity_check_names_the_key(tmp_path, check, message):
    with pytest.raises(UserError, match=message):
        load_study_config(write_study(tmp_path, fidelity_check=check))


def test_fidelity_check_config_resolves_level_0_with_the_changed_keys(tmp_path):
    config, _ = load_study_config(write_study(tmp_path, fidelity_check={"level": {"epochs": 3, "train_subset": 64}}))
    assert config.fidelity_check.n == 8
    check = config.check_fidelity
    assert (check.epochs, check.train_subset, check.batch_size) == (3, 64, config.levels[0].batch_size)
    assert load_study_config(write_study(tmp_path))[0].check_fidelity is None


def _shuffle_level(db, study_name: str) -> dict[int, tuple[float, float]]:
    """Permute the stored accuracies of a level's COMPLETE trials so that their ranking says nothing about level
    0's: the candidate ranked i-th at level 0 gets the level's accuracy of rank z_i, z = 0, n−1, 1, n−2, …
    (a zigzag: τ = 1 / ⌈n/2⌉ or so against level 0). Returns {parent: (level-0 accuracy, new accuracy)}."""
    con = sqlite3.connect(db)
    query = """SELECT t.trial_id, a.key, a.value_json FROM trials t JOIN studies s ON s.study_id = t.study_id
               JOIN trial_user_attributes a ON a.trial_id = t.trial_id
               WHERE s.study_name = ? AND t.state = 'COMPLETE' AND a.key IN ('accuracy', 'parent')"""
    rows = {}
    for trial_id, key, value in con.execute(query, (study_name,)):
        rows.setdefault(trial_id, {})[key] = json.loads(value)
    level0 = {t.number: t.user_attrs["accuracy"] for t in optuna.load_study(
        study_name=study_name.split("@")[0], storage=f"sqlite:///{db}").trials if "accuracy" in t.user_attrs}
    by_level0 = sorted(rows, key=lambda tid: (level0[rows[tid]["parent"]], rows[tid]["parent"]))
    values = sorted(r["accuracy"] for r in rows.values())
    n, zigzag, lo, hi = len(values), [], 0, len(values) - 1
    while lo <= hi:
        zigzag.append(lo)
        lo += 1
        if lo <= hi:
            zigzag.append(hi)
            hi -= 1
    out = {}
    for rank, trial_id in enumerate(by_level0):
        new = values[zigzag[rank]]
        con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = 'accuracy'",
                    (json.dumps(new), trial_id))
        out[rows[trial_id]["parent"]] = (level0[rows[trial_id]["parent"]], new)
    con.commit()
    con.close()
    assert n == len(out)
    return out


def test_a_shuffled_level_is_reported_with_tau_near_zero_and_a_warning(tmp_path, monkeypatch, capsys):
    """A tiny digits study promotes every candidate (epsilon 1) to level 1; its level-1 accuracies are then
    permuted in the storage. The resumed run (nothing left to train) reports τ ≈ 0 with a warning in fidelity.json,
    the run summary, compare_notes.txt and the dashboard; the real (unshuffled) agreement is reported first."""
    path = write_study(tmp_path, dataset=DIGITS, n_trials=8, fidelities=[{"epochs": 2}], promotion={"epsilon": 1.0},
                       baselines={"deepreshape": {"budgets": [3000]}})
    out = tmp_path / "run"
    config, space = load_study_config(path)
    result = run_study(config, space, out_dir=out, progress=False)
    before = json.loads((out / "fidelity.json").read_text())
    (entry,) = before["agreements"]
    assert (entry["kind"], entry["lower"], entry["higher"]) == ("promotion", "level 0", "level 1")
    assert entry["n"] == len(result.trials[result.trials["level"] == 1]) >= 6
    assert entry["text"] in result.notes

    pairs = _shuffle_level(out / "study.db", "t@L1")
    expected = kendall_tau_b([a for a, _ in pairs.values()], [b for _, b in pairs.values()])
    assert cli(monkeypatch, "run", str(path), "-o", str(out), "--no-progress") == 0
    summary = capsys.readouterr().out
    (shuffled,) = json.loads((out / "fidelity.json").read_text())["agreements"]
    assert shuffled["n"] == len(pairs) and shuffled["tau"] == pytest.approx(expected, abs=1e-4)
    assert abs(shuffled["tau"]) < 0.3, shuffled
    assert "< 0.5: level 0 ranks candidates unlike level 1" in shuffled["warning"]
    assert sorted(p[0] for p in shuffled["pairs"]) == sorted(pairs)
    print(f"level 1 as trained: {entry['text']}; shuffled: {shuffled['text']}", file=sys.stderr)
    assert shuffled["text"] in summary and "warning:" in summary
    notes = (out / "compare_notes.txt").read_text()
    assert shuffled["text"] in notes
    assert len(pd.read_csv(out / "compare.csv"))  # the CSV itself is unchanged: plain pandas still reads it
    facts = load_dashboard_data(out).facts
    assert facts["rank agreement: level 0 vs level 1"] == shuffled["text"]
    assert "class=warn" in (out / "dashboard.html").read_text()


def test_fidelity_check_retrains_a_spread_and_stays_out_of_the_front(tmp_path):
    """``fidelity_check: {n: 4}`` on a level-0 study: 4 candidates spread over the accuracy range (lowest and
    highest included) are re-trained at 2 epochs in ``t@check``; fidelity.json reports their τ; the front, trials.csv
    and compare.csv never see them; a resume trains nothing again, and a larger n adds only the difference."""
    path = write_study(tmp_path, dataset=DIGITS, n_trials=6, fidelity_check={"n": 4, "level": {"epochs": 2}},
                       baselines={"deepreshape": {"budgets": [3000]}})
    out = tmp_path / "run"
    config, space = load_study_config(path)
    trials = run_study(config, space, out_dir=out, progress=False).trials
    assert set(trials["level"]) == {0}  # the check is no level
    check = optuna.load_study(study_name="t@check", storage=f"sqlite:///{out / 'study.db'}").trials
    assert [t.state.name for t in check] == ["COMPLETE"] * 4
    assert all(t.user_attrs["level"] == -1 and '"epochs": 2' in t.user_attrs["fidelity"] for t in check)
    parents = {t.user_attrs["parent"] for t in check}
    level0 = trials[(trials["state"] == "COMPLETE") & trials["feasible"].astype(bool)]
    checked = set(level0.loc[level0["number"].isin(parents), "accuracy"])
    assert level0["accuracy"].max() in checked and level0["accuracy"].min() in checked  # the best and the worst
    report = json.loads((out / "fidelity.json").read_text())
    (entry,) = report["agreements"]
    assert entry["kind"] == "check" and entry["check_level"] == {"epochs": 2} and entry["n"] == 4
    assert entry["higher"] == "the fidelity check (epochs=2)"
    assert "fewer than 6" in entry["warning"]  # 4 candidates: too few to trust τ
    assert sorted(p[0] for p in entry["pairs"]) == sorted(parents)
    assert not pd.read_csv(out / "trials.csv")["level"].eq(-1).any()
    assert not pd.read_csv(out / "pareto.csv")["level"].eq(-1).any()
    assert entry["text"] in (out / "compare_notes.txt").read_text()
    # resume: nothing re-trained; a larger n adds the difference only
    run_study(config, space, out_dir=out, progress=False)
    assert len(optuna.load_study(study_name="t@check", storage=f"sqlite:///{out / 'study.db'}").trials) == 4
    bigger, _ = load_study_config(write_study(tmp_path, dataset=DIGITS, n_trials=6, baselines={"deepreshape": {
        "budgets": [3000]}}, fidelity_check={"n": 5, "level": {"epochs": 2}}))
    run_study(bigger, space, out_dir=out, progress=False)
    check = optuna.load_study(study_name="t@check", storage=f"sqlite:///{out / 'study.db'}").trials
    assert len(check) == 5 and len({t.user_attrs["parent"] for t in check}) == 5


def test_fidelity_check_with_two_workers_trains_each_candidate_once(tmp_path):
    from tests.test_parallel import write_study as parallel_study

    path = parallel_study(tmp_path, fidelity_check={"n": 4, "level": {"epochs": 2}},
                          baselines={"deepreshape": {"budgets": [3000]}})
    config, space = load_study_config(path)
    run_study(config, space, out_dir=tmp_path / "run", progress=False, jobs=2)
    check = optuna.load_study(study_name="p@check", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}").trials
    done = [t for t in check if t.state.name == "COMPLETE"]
    assert len(done) == 4 == len({t.user_attrs["parent"] for t in done})
    assert all(t.state.name == "PRUNED" for t in check if t not in done)  # a duplicate enqueued by the other worker
    (entry,) = json.loads((tmp_path / "run" / "fidelity.json").read_text())["agreements"]
    assert entry["kind"] == "check" and entry["n"] == 4
