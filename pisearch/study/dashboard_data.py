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

from pisearch.errors import UserError
from pisearch.report.dashboard import dashboard_html
from pisearch.study.records import all_levels, level_count, pick_study, write_atomic
from pisearch.study.storage import JOURNAL, display_url, open_storage

SQLITE = "sqlite:///"



@dataclass(frozen=True)
class DashboardData:
    """A study's trials table (one row per trial and fidelity level, :func:`pisearch.study.records.all_levels`),
    its facts (label → text, in display order), the run folder (None for a server storage) and the
    ``pisearch export`` command as a ``str.format`` template with ``{trial}``."""

    trials: pd.DataFrame
    facts: dict[str, str]
    run_dir: Path | None
    export_command: str


def resolve_source(source: str | Path) -> tuple[str, Path | None]:
    """``(storage URL, run folder)`` for a run folder (its ``study.db``), a ``.db`` (SQLite) or ``.log`` (journal)
    file, or a storage URL; a file storage's run folder is the file's folder, a server storage has none."""
    text = str(source)
    for prefix in (SQLITE, JOURNAL):
        if text.startswith(prefix):
            path = Path(text.removeprefix(prefix))
            if not path.is_file():
                raise UserError(f"{text}: no such storage file")
            return text, path.parent
    if "://" in text:
        return text, None
    path = Path(text)
    if path.is_dir():
        if not (path / "study.db").is_file():
            raise UserError(f"{text}: no study.db in this run folder (a run on another storage: pass its URL and "
                            f"--study)")
        path = path / "study.db"
    if not path.is_file() or path.suffix not in (".db", ".log"):
        raise UserError(f"{text}: not a run folder, a .db or .log storage file, or a storage URL")
    return (f"{SQLITE}{path.as_posix()}" if path.suffix == ".db" else str(path)), path.parent


def open_stored_study(storage: str, name: str | None) -> tuple[optuna.Study, pd.DataFrame]:
    """Study ``name`` in ``storage`` (when None: the only study there, fidelity-level studies aside) and its
    trials at every fidelity level present (level studies ``<name>@L<L>``; :func:`records.all_levels`)."""
    store = open_storage(storage, heartbeat=False)
    shown = display_url(storage)
    try:
        names = [s.study_name for s in store.get_all_studies()]
    except Exception as err:  # storages raise driver-specific errors for unreadable or corrupted databases
        raise UserError(f"storage {shown}: cannot read ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    name = pick_study(f"storage {shown}", names, name)
    study = optuna.load_study(study_name=name, storage=store)
    return study, all_levels(study, store, level_count(names, name))


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


def study_facts(study: optuna.Study, trials: pd.DataFrame, storage: str) -> dict[str, str]:
    """Study, storage (password masked), dataset, fidelity, measurements per fidelity level, sampler, objectives,
    level-0 trials by state and by source, wall time (first trial start to last trial end, every level) and the
    summed training time."""
    config = json.loads(study.user_attrs.get("config", "{}"))
    unknown = "unknown (the study holds no pisearch configuration)"
    dataset = config.get("dataset", {})
    sampler = config.get("sampler", {})
    names = config.get("objectives") or [f"objective {i}" for i in range(len(study.directions))]
    facts = {"study": study.study_name, "storage": display_url(storage)}
    facts["dataset"] = dataset.get("name", unknown) + (f", {dataset['resolution']}² px" if dataset.get("resolution")
                                                       else "")
    facts["fidelity"] = ", ".join(f"{k}={v}" for k, v in sorted(config.get("fidelity", {}).items())) or unknown
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
    facts["trials"] = f"{len(base)}: " + _counts(base["state"], ("COMPLETE", "FAIL", "PRUNED"))
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
    storage, run_dir = resolve_source(source)
    loaded, trials = open_stored_study(storage, study)
    target = _literal(display_url(str(source)))
    if study is not None or run_dir is None:
        target += f" --study {_literal(loaded.study_name)}"
    exports = _literal(str(run_dir / "exports")) if run_dir is not None else "exports"
    command = f"pisearch export {target} --trial {{trial}} -o {exports}/trial{{trial}}"
    return DashboardData(trials, study_facts(loaded, trials, storage), run_dir, command)


def write_dashboard(run_dir_or_url: str | Path, study: str | None = None, out: str | Path | None = None) -> Path:
    """Write the self-contained dashboard HTML (default ``<run folder>/dashboard.html``, or
    ``runs/<study>/dashboard.html`` for a storage without a run folder) atomically; returns its path."""
    data = load_dashboard_data(run_dir_or_url, study)
    path = Path(out) if out else (data.run_dir or Path("runs") / data.facts["study"]) / "dashboard.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dashboard_html(data.trials, data.facts, data.export_command), path)
    return path
