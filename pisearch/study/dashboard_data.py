"""What the Pareto dashboard shows, loaded from a run folder or an Optuna storage URL.

The dashboard itself (:mod:`pisearch.report.dashboard`) is pure pandas → HTML; this module is the only part that
opens the storage. ``write_dashboard`` is what ``pisearch dashboard`` and the end of ``pisearch run`` call.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from pisearch import __version__
from pisearch.config import validate
from pisearch.data import read_record
from pisearch.report import dashboard_html, rank_agreements
from pisearch.space import BudgetConfig, SearchSpace
from pisearch.study.objective import PRECISION_ATTR, VERSION_ATTR
from pisearch.study.records import shown_states, write_atomic
from pisearch.study.store import CHECK_ATTR, read_study, run_folder

DATASET_SOURCE_KEYS = ("root", "test_root", "path", "subset")  # where a study's images come from, as written
CLASSES_SHOWN = 12  # class names listed in the facts (all of them are in the run folder's dataset.json)


@dataclass(frozen=True)
class DashboardData:
    """A study's trials table (one row per trial and fidelity level), its seed re-trainings (``compare: seeds``),
    its facts (label → text, in display order), its ReLU bins, the run folder (None for a server storage), the
    ``pisearch export`` command as a ``str.format`` template with ``{trial}`` and the sample images of a dataset of
    the user's own files (PNG; None for the others)."""

    trials: pd.DataFrame
    seed_runs: pd.DataFrame
    facts: dict[str, str]
    bins: list[tuple[int, int]]
    run_dir: Path | None
    export_command: str
    samples: bytes | None = None


def relu_bins(study: optuna.Study) -> list[tuple[int, int]]:
    """The ReLU bins the study's searched trials were spread over (its stored space and budget), or ``[]``."""
    config, space = (json.loads(study.user_attrs.get(k, "{}")) for k in ("config", "space"))
    if not space or not config:
        return []
    budget = validate(BudgetConfig, config.get("budget", {}), f"study {study.study_name!r} (config budget)")
    return SearchSpace.from_dict(space, source=f"study {study.study_name!r} (space)").with_budget(budget).bins()


def _literal(text: str) -> str:
    """``text`` as one shell word, inside a ``str.format`` template."""
    return shlex.quote(text).replace("{", "{{").replace("}", "}}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _counts(series: pd.Series, always: tuple[str, ...] = ()) -> str:
    counts = series.dropna().value_counts()
    names = list(always) + [s for s in counts.index if s not in always]
    return ", ".join(f"{int(counts.get(s, 0))} {str(s).lower()}" for s in names)


def _precision_text(study: optuna.Study, trials: pd.DataFrame) -> str:
    """The study's precision (what its ``auto`` fidelities train in) and the trials per precision they trained in."""
    recorded = study.user_attrs.get(PRECISION_ATTR, "not recorded (a study of an older pisearch)")
    used = trials[PRECISION_ATTR].dropna() if PRECISION_ATTR in trials else pd.Series(dtype=str)
    return f"{recorded}" + (f" (trained: {_counts(used)})" if len(used) else "")


def _version_text(study: optuna.Study, trials: pd.DataFrame) -> str:
    """Which pisearch drew the page, created the study and ran its trials (trials per version)."""
    created = study.user_attrs.get(VERSION_ATTR, "not recorded (an older pisearch)")
    used = trials[VERSION_ATTR].dropna() if VERSION_ATTR in trials else pd.Series(dtype=str)
    ran = ", ".join(f"{version} ({n})" for version, n in used.value_counts().items())
    return f"{__version__} drew this page; the study was created by {created}" + (f"; trials run by {ran}" if ran
                                                                                  else "")


def _dataset_facts(record: dict) -> dict[str, str]:
    """Images per split and classes of a dataset of the user's own files, from the run folder's ``dataset.json``."""
    images, classes = record.get("images", {}), record.get("classes", [])
    shown = ", ".join(map(str, classes[:CLASSES_SHOWN])) + (f", … (+{len(classes) - CLASSES_SHOWN})"
                                                            if len(classes) > CLASSES_SHOWN else "")
    return {"dataset images": f"train {images.get('train', 0):,}, validation {images.get('val', 0):,}, test "
                              f"{images.get('test', 0):,} (test set: {record.get('test', 'unknown')})",
            "dataset classes": f"{len(classes)}: {shown}"}


def study_facts(study: optuna.Study, trials: pd.DataFrame, storage_label: str,
                dataset_record: dict | None = None) -> dict[str, str]:
    """Study, storage (password masked), dataset (with its files and, from ``dataset_record`` — the run folder's
    ``dataset.json`` of a dataset of the user's own files — its images per split and classes), fidelity, precision,
    pisearch versions, measurements per fidelity level, sampler, objectives, level-0 trials by state and by source,
    wall time (first trial start to last trial end, every level) and the summed training time."""
    config = json.loads(study.user_attrs.get("config", "{}"))
    unknown = "unknown (the study holds no pisearch configuration)"
    dataset = config.get("dataset", {})
    sampler = config.get("sampler", {})
    names = config.get("objectives") or [f"objective {i}" for i in range(len(study.directions))]
    facts = {"study": study.study_name, "storage": storage_label}
    facts["dataset"] = dataset.get("name", unknown) + (f", {dataset['resolution']}² px" if dataset.get("resolution")
                                                       else "")
    facts["dataset"] += "".join(f", {key} {dataset[key]}" for key in DATASET_SOURCE_KEYS if dataset.get(key))
    facts.update(_dataset_facts(dataset_record) if dataset_record else {})
    facts["fidelity"] = ", ".join(f"{k}={v}" for k, v in sorted(config.get("fidelity", {}).items())) or unknown
    facts["precision"] = _precision_text(study, trials)
    facts["pisearch"] = _version_text(study, trials)
    level = pd.to_numeric(trials["level"], errors="coerce").fillna(0).astype(int)
    measured = trials["accuracy"].notna()
    facts["fidelity levels measured"] = ", ".join(
        f"level {lv}: {n} trials" for lv, n in level[measured].value_counts().sort_index().items()) or "none yet"
    if sampler:
        seed = config.get("seed") if sampler.get("seed") is None else sampler["seed"]
        extra = f"population {sampler['population_size']}, " if sampler.get("name") == "nsga2" else ""
        facts["sampler"] = f"{sampler['name']} ({extra}seed {seed})"
    else:
        facts["sampler"] = unknown
    facts["objectives"] = ", ".join(f"{d.name.lower()} {n}" for n, d in zip(names, study.directions))
    base = trials[level == 0]  # the study's own trials; higher levels re-measure some of them
    facts["trials"] = f"{len(base)}: " + _counts(shown_states(base), ("COMPLETE", "FAIL", "PRUNED"))
    facts["sources"] = _counts(base["source"]) or "none"
    facts["infeasible (not trained)"] = str(int((base["feasible"].astype(str).str.lower() == "false").sum()))
    starts = pd.to_datetime(trials["datetime_start"]).dropna()
    ends = pd.to_datetime(trials["datetime_complete"]).dropna()
    span = (ends.max() - starts.min()).total_seconds() if len(starts) and len(ends) else 0.0
    train = pd.to_numeric(trials["train_seconds"], errors="coerce").sum()
    facts["wall time"] = f"{_duration(span)} (first trial start to last trial end); {_duration(train)} training"
    return facts


def load_dashboard_data(source: str | Path, study: str | None = None) -> DashboardData:
    """Trials (every fidelity level) and facts of a study, from a run folder, a storage file or a storage URL
    (``study`` names the study when the storage holds several). Passwords in URLs are masked in what it returns."""
    stored = read_study(str(source), study)
    run_dir, label = stored.location.run_dir, stored.location.label
    target = _literal(label)
    if study is not None or run_dir is None:
        target += f" --study {_literal(stored.study.study_name)}"
    exports = _literal(str(run_dir / "exports")) if run_dir is not None else "exports"
    command = f"pisearch export {target} --trial {{trial}} -o {exports}/trial{{trial}}"
    record, samples = read_record(run_dir)
    facts = study_facts(stored.study, stored.trials, label, record)
    for entry in rank_agreements(stored.trials, stored.check_runs, CHECK_ATTR):  # fidelity.json's, warnings included
        facts[f"rank agreement: {entry['lower']} vs {entry['higher']}"] = entry["text"]
    return DashboardData(stored.trials, stored.seed_runs, facts, relu_bins(stored.study), run_dir, command, samples)


def write_dashboard(run_dir_or_url: str | Path, study: str | None = None, out: str | Path | None = None) -> Path:
    """Write the self-contained dashboard HTML (default ``<run folder>/dashboard.html``, or
    ``runs/<study>/dashboard.html`` for a storage without a run folder) atomically; returns its path."""
    data = load_dashboard_data(run_dir_or_url, study)
    path = Path(out) if out else (data.run_dir or run_folder(data.facts["study"])) / "dashboard.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dashboard_html(data.trials, data.facts, data.export_command, data.seed_runs, data.bins,
                                data.samples), path)
    return path
