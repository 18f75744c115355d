"""Linearized trials as their own series (issue 22): a ``linearize:`` stage trains its results beyond their
parent's proxy training (a mask search and a finetune), so they are never on the proxy front, in promotion or
in the search-vs-rule comparison, where every point had the same training at its level; they are reported
beside it with the training each had."""

from __future__ import annotations

import pandas as pd

from pisearch.report.compare import measured, trials_table

PROXY_TRAINED = ("search", "seed", "rule", "net")  # trained by the proxy trainer at their level, and only by it
LINEARIZED_COLUMNS = ["number", "source", "parent", "budget", "relus", "accuracy", "train_seconds",
                      "parent_relus", "parent_accuracy", "parent_train_seconds", "training_ratio"]


def proxy_trained(trials: pd.DataFrame) -> pd.DataFrame:
    """The rows of a trials table whose accuracy comes from proxy training alone (the front's points)."""
    return trials[trials["source"].isin(PROXY_TRAINED)]


def linearized_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per measured linearized trial: its method (``source``), parent trial, budget, ReLUs and accuracy,
    its own training seconds (mask search + finetune), the parent's ReLUs, accuracy and proxy training seconds
    (at the level the trial was recorded at, its parent's) and ``training_ratio`` = its training / the parent's."""
    m = measured(trials_table(trials))
    rows = m[~m["source"].isin(PROXY_TRAINED)]
    if rows.empty or "parent" not in m:
        return pd.DataFrame(columns=LINEARIZED_COLUMNS)
    parents = m[m["source"].isin(PROXY_TRAINED)].drop_duplicates(["number", "level"])
    parents = parents.set_index(["number", "level"])[["relus", "accuracy", "train_seconds"]].add_prefix("parent_")
    out = rows.assign(parent=rows["parent"].astype(int)).join(parents, on=["parent", "level"])
    out = out.assign(training_ratio=out["train_seconds"] / out["parent_train_seconds"])
    return out.reindex(columns=LINEARIZED_COLUMNS).sort_values(["parent", "source", "relus"]).reset_index(drop=True)
