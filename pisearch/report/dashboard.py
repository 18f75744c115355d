"""The Pareto dashboard: one self-contained HTML page (plotly.js embedded, opens with no network) from a trials table.

Pure pandas → plotly → HTML: it never opens a storage and never trains (:mod:`pisearch.study.dashboard_data`
loads the data). The trials table is the one of :mod:`pisearch.report.compare` (``number``, ``state``, ``source``,
``accuracy``, ``relus``, ``spec``, ``level`` …) with ``summary``, ``polys`` and the other cost columns when present.
ReLUs are scalar ReLU evaluations per image in the spec's own convention (every activation site of the spec;
convention A for the shipped search spaces); the ReLU axes are logarithmic, so a count of 0 is drawn at 1.
Every point is a candidate at its highest fidelity level (see :mod:`pisearch.report.compare`).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from pisearch.report.compare import (
    FRONT_OBJECTIVES, HV_AXES, SEARCHED, accuracy_by_width, bin_table, compare_table, highest_level,
    hypervolume_vs_rule, log_relus, measured, relu_sensitivity, stage_relu_share, trials_table,
)
from pisearch.report.linearized import PROXY_TRAINED, linearized_table
from pisearch.report.pareto import hypervolume_2d, pareto_front, pareto_mask

# Marker per trial source; any other source (a linearization method, …) gets OTHER and is drawn as its own series
# with its training, never on the front (pisearch.report.linearized).
SOURCE_STYLE = {
    "search": {"symbol": "circle", "color": "#7f9cc9", "size": 8},
    "seed": {"symbol": "circle-open", "color": "#3d5a80", "size": 9},
    "rule": {"symbol": "diamond", "color": "#e6850e", "size": 13},
    "net": {"symbol": "square", "color": "#2a9d3a", "size": 12},
}
OTHER_STYLE = {"symbol": "x", "color": "#6b6b6b", "size": 11}
FRONT_COLOR = "#c8102e"
HOVER = ("trial %{customdata[0]} · %{customdata[1]} · level %{customdata[2]}<br>%{customdata[3]}<br>"
         "ReLUs %{customdata[4]:,}<br>polys %{customdata[5]:,}<br>accuracy %{y:.4f}<extra></extra>")


def candidates(trials: pd.DataFrame) -> pd.DataFrame:
    """Measured candidates (COMPLETE, feasible, with accuracy and ReLUs), each at its highest fidelity level."""
    return highest_level(measured(trials_table(trials)))


def search_front(trials: pd.DataFrame) -> pd.DataFrame:
    """Pareto front (max accuracy, min ReLUs) of the searched candidates (search and seed trials) at their highest
    level, by ReLUs."""
    pool = candidates(trials)
    return pareto_front(pool[pool["source"].isin(SEARCHED)], FRONT_OBJECTIVES).sort_values(["relus", "number"])


def _log_x(relus: pd.Series) -> np.ndarray:
    return np.maximum(relus.to_numpy(float), 1.0)


def _customdata(df: pd.DataFrame) -> np.ndarray:
    """Hover fields of :data:`HOVER` for rows of a :func:`candidates` table."""
    missing = pd.Series(np.nan, index=df.index)
    cols = [df["number"], df["label"].fillna(df["source"]), df["level"], df.get("summary", missing).fillna(""),
            df["relus"], pd.to_numeric(df.get("polys", missing), errors="coerce")]
    return np.column_stack([c.to_numpy(object) for c in cols])


def _layout(fig: go.Figure, title: str, xtitle: str, ytitle: str, log_x: bool = True, height: int = 460) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", height=height, margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "y": -0.18}, hoverlabel={"align": "left"})
    fig.update_xaxes(title=xtitle, type="log" if log_x else "-")  # "-": plotly picks (linear or category)
    fig.update_yaxes(title=ytitle)
    return fig


def pareto_figure(trials: pd.DataFrame, compare: pd.DataFrame | None = None) -> go.Figure:
    """Accuracy vs ReLUs (log x): one marker trace per source (searched, seeds, DeepReShape rule, named nets, …), the
    searched Pareto front as a step line (trace named ``Pareto front …``), hover = trial, spec summary, counts, and
    with ``compare`` rows that carry seed statistics, each rule point and its searched contender as mean ± sd over
    the seeds (traces ``… over seeds``)."""
    pool = candidates(trials)
    ratios = linearized_table(trials).groupby("source")["training_ratio"].median()
    fig = go.Figure()
    for source, group in pool.groupby("source", sort=False):
        style = SOURCE_STYLE.get(source, OTHER_STYLE)
        labelled = source not in SEARCHED
        name = f"{source} ({len(group)})"
        if source not in PROXY_TRAINED:  # its own series: trained beyond its parent's proxy training
            name = f"{source} ({len(group)}, linearized: {ratios.get(source, float('nan')):.1f}× its parent's training)"
        fig.add_trace(go.Scatter(
            x=_log_x(group["relus"]), y=group["accuracy"], name=name,
            mode="markers+text" if labelled else "markers", text=group["label"] if labelled else None,
            textposition=[("top center", "bottom center")[i % 2] for i in range(len(group))],  # labels don't clash
            customdata=_customdata(group), hovertemplate=HOVER,
            marker={"symbol": style["symbol"], "color": style["color"], "size": style["size"],
                    "line": {"width": 1, "color": "#333"}}))
    front = search_front(trials)
    if len(front):
        fig.add_trace(go.Scatter(
            x=_log_x(front["relus"]), y=front["accuracy"], name=f"Pareto front (search, {len(front)})",
            mode="lines+markers", line={"shape": "hv", "color": FRONT_COLOR, "width": 2},
            marker={"color": FRONT_COLOR, "size": 7}, customdata=_customdata(front), hovertemplate=HOVER))
    for side, color in (("rule", SOURCE_STYLE["rule"]["color"]), ("search", FRONT_COLOR)):
        rows = compare[compare[f"{side}_accuracy_mean"].notna()] if compare is not None else pd.DataFrame()
        if len(rows):
            relus = rows["rule_relus" if side == "rule" else "search_best_relus"]
            fig.add_trace(go.Scatter(
                x=_log_x(relus), y=rows[f"{side}_accuracy_mean"], mode="markers", name=f"{side} over seeds (mean ± sd)",
                error_y={"type": "data", "array": rows[f"{side}_accuracy_std"].fillna(0), "visible": True},
                marker={"color": color, "size": 6, "symbol": "line-ew-open"},
                hovertemplate="%{y:.4f} ± %{error_y.array:.4f} over seeds<extra></extra>"))
    levels = ", ".join(map(str, sorted(pool["level"].unique())))
    return _layout(fig, f"Accuracy vs ReLU count (each candidate at its highest fidelity level; levels {levels})",
                   "ReLUs per image (log; 0 drawn at 1)", "validation accuracy", height=520)


def hypervolume_history(trials: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Hypervolume of the searched front after each searched trial (columns ``number``, ``hypervolume``), with
    :func:`~pisearch.report.compare.hypervolume_vs_rule`'s summary, whose level, axes (accuracy × log10 ReLUs) and
    reference point it uses, so the last value equals its ``search_hypervolume``."""
    summary = hypervolume_vs_rule(trials)
    m = measured(trials_table(trials))
    points = m[m["source"].isin(SEARCHED) & (m["level"] == summary["level"])].sort_values("number")
    reference = (summary["reference_accuracy"], math.log10(summary["reference_relus"]))
    front, rows = np.empty((0, 2)), []
    for number, accuracy, relus in points[["number", "accuracy", "relus"]].itertuples(index=False):
        front = np.vstack([front, [accuracy, log_relus(relus)]])
        front = front[pareto_mask(front, HV_AXES)]
        rows.append({"number": number, "hypervolume": hypervolume_2d(front, reference, HV_AXES)})
    return pd.DataFrame(rows, columns=["number", "hypervolume"]), summary


def hypervolume_figure(trials: pd.DataFrame) -> go.Figure:
    """:func:`hypervolume_history` as a step line over trial numbers, the rule points' hypervolume dashed."""
    history, summary = hypervolume_history(trials)
    fig = go.Figure(go.Scatter(x=history["number"], y=history["hypervolume"], mode="lines+markers", name="search",
                               line={"shape": "hv", "color": FRONT_COLOR}))
    if summary["n_rule"]:
        fig.add_hline(y=summary["rule_hypervolume"], line_dash="dash", line_color=SOURCE_STYLE["rule"]["color"],
                      annotation_text=f"DeepReShape rule points ({summary['n_rule']})")
    return _layout(fig, f"Hypervolume of the searched front (level {summary['level']})", "trial number",
                   "accuracy × decades of ReLUs", log_x=False)


def width_figure(trials: pd.DataFrame) -> go.Figure:
    """Accuracy vs ReLUs, one colour per width profile (stage-to-stage width ratios, DeepReShape's α,β,γ); markers
    only, since candidates of one profile also differ in base width, depth and activations."""
    fig = go.Figure()
    for profile, group in accuracy_by_width(trials).groupby("profile", sort=True):
        fig.add_trace(go.Scatter(
            x=_log_x(group["relus"]), y=group["accuracy"], mode="markers", marker={"size": 9},
            name=f"ratios {profile}" if profile else "one stage",
            customdata=np.column_stack([group["number"], group["source"], group["widths"]]),
            hovertemplate="trial %{customdata[0]} (%{customdata[1]})<br>widths %{customdata[2]}<br>"
                          "ReLUs %{x:,}<br>accuracy %{y:.4f}<extra></extra>"))
    return _layout(fig, "Accuracy vs ReLUs by width profile", "ReLUs per image (log; 0 drawn at 1)",
                   "validation accuracy")


def stage_share_figure(trials: pd.DataFrame) -> go.Figure:
    """Stacked bars: the share of each stage (stem, stage1 …, head) in the ReLU count of every Pareto trial and
    rule point that has ReLUs (a candidate without ReLUs has no shares), ordered by ReLU count."""
    shares = stage_relu_share(trials)
    keys = search_front(trials)[["number", "level"]]
    picked = shares.merge(keys, on=["number", "level"])
    rows = pd.concat([picked, shares[shares["source"] == "rule"]]).query("relus > 0").sort_values("relus")
    names = [f"#{n} {lab if isinstance(lab, str) else src}" for n, lab, src in
             rows[["number", "label", "source"]].itertuples(index=False)]
    fig = go.Figure()
    for stage in [c for c in shares.columns if c in ("stem", "head") or c.startswith("stage")]:
        fig.add_trace(go.Bar(x=names, y=rows[stage], name=stage, hovertemplate="%{x}: %{y:.1%}<extra>" + stage
                             + "</extra>"))
    fig.update_layout(barmode="stack", yaxis_tickformat=".0%")
    return _layout(fig, "ReLU share per stage (Pareto trials and rule points)", "trial, by ReLU count",
                   "share of the ReLU count", log_x=False)


def _cell(value: object, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return '<td data-v="">–</td>'
    if kind == "text":
        return f"<td>{html.escape(str(value))}</td>"
    if kind == "code":
        return f"<td><code>{html.escape(str(value))}</code></td>"
    number = float(value)
    text = {"int": f"{number:,.0f}", "acc": f"{number:.4f}", "signed": f"{number:+.4f}", "x": f"{number:.2f}×",
            "float": f"{number:.4g}"}[kind]
    return f'<td data-v="{number!r}">{text}</td>'


def _table_html(df: pd.DataFrame, columns: list[tuple[str, str, str]], table_id: str) -> str:
    """A sortable table of ``df`` for ``columns`` = (column, header, kind) present in ``df``."""
    columns = [c for c in columns if c[0] in df]
    head = "".join(f"<th title='sort'>{html.escape(h)}</th>" for _, h, _ in columns)
    rows = ("".join(_cell(row[c], kind) for c, _, kind in columns) for _, row in df.iterrows())
    body = "".join(f"<tr>{cells}</tr>" for cells in rows)
    return (f'<div class="scroll"><table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


PARETO_COLUMNS = [
    ("number", "trial", "int"), ("level", "level", "int"), ("accuracy", "accuracy", "acc"), ("relus", "ReLUs", "int"),
    ("relus_b", "ReLUs (B)", "int"), ("polys", "polys", "int"), ("macs", "MACs", "int"), ("params", "params", "int"),
    ("latency_ms", "latency ms", "float"), ("comm_mb", "comm MB", "float"),
    # measured under SecretFlow SPU by the study's measure: stage (only the trials it ran; shown when any has)
    ("measured_protocol", "SPU protocol", "text"), ("measured_lan_ms", "SPU lan ms", "float"),
    ("measured_wan_ms", "SPU wan ms", "float"), ("measured_comm_mb", "SPU MB", "float"),
    ("summary", "spec", "text"), ("spec_hash", "hash", "code"), ("export", "export command", "code"),
]
COMPARE_VIEW = [
    ("budget", "budget", "int"), ("rule_label", "rule point", "text"), ("rule_number", "rule trial", "int"),
    ("rule_relus", "rule ReLUs", "int"), ("rule_accuracy", "rule accuracy", "acc"),
    ("search_best_number", "best search trial ≤ rule ReLUs", "int"), ("search_best_source", "its source", "text"),
    ("search_best_relus", "its ReLUs", "int"), ("search_best_accuracy", "its accuracy", "acc"),
    ("search_minus_rule", "search − rule", "signed"), ("rule_accuracy_mean", "rule mean (seeds)", "acc"),
    ("rule_accuracy_std", "rule sd", "acc"), ("search_accuracy_mean", "search mean (seeds)", "acc"),
    ("search_accuracy_std", "search sd", "acc"), ("difference_low", "95% low", "signed"),
    ("difference_high", "95% high", "signed"), ("verdict", "verdict (ReLUs)", "text"),
    ("latency_best_number", "best trial ≤ rule latency", "int"), ("verdict_latency", "verdict (latency)", "text"),
    ("search_relus_at_iso_accuracy", "search ReLUs at rule accuracy", "int"),
    ("relu_saving_at_iso_accuracy", "ReLU saving", "x"), ("rule_train_seconds", "rule s", "float"),
    ("search_train_seconds", "search s", "float"), ("compute_ratio", "search ÷ rule compute", "x"),
    ("search_best_accuracy_at_1x", "search best at 1× rule compute", "acc"),
    ("search_best_accuracy_at_5x", "at 5×", "acc"), ("search_best_accuracy_at_20x", "at 20×", "acc"),
    ("level", "level", "int"), ("n_search", "searched", "int"), ("train_seeds", "training seeds", "text"),
]
BIN_VIEW = [("bin", "bin", "int"), ("relus_low", "ReLUs from", "int"), ("relus_high", "to", "int"),
            ("trials", "searched trials", "int"), ("measured", "measured", "int"),
            ("best_accuracy", "best accuracy", "acc")]
UNMEASURED_COLUMNS = [("number", "trial", "int"), ("level", "level", "int"), ("state", "state", "text"),
                      ("source", "source", "text"),
                      ("label", "label", "text"), ("relus", "ReLUs", "int"), ("reason", "reason", "text")]

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1400px;padding:0 16px;color:#222}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid #ddd}
.note{color:#555;font-size:.9em;margin:4px 0} .empty{font-size:1.1em;color:#8a2b06;padding:12px;background:#fff4e5}
table{border-collapse:collapse;font-size:.85em;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
table.sortable th{cursor:pointer;background:#f4f4f4} table.sortable td{white-space:nowrap}
table.facts th{background:#f4f4f4;width:14em} td.warn{color:#8a2b06;background:#fff4e5}
.scroll{overflow-x:auto} code{font-size:.95em}
.row{display:grid;grid-template-columns:1fr 1fr;gap:12px}
"""
SORT_JS = """
document.querySelectorAll("table.sortable th").forEach((th, i) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], up = th.dataset.dir !== "asc";
  th.dataset.dir = up ? "asc" : "desc";
  const key = td => td.dataset.v !== undefined ? td.dataset.v : td.textContent;
  const rows = [...body.rows].sort((a, b) => {
    const x = key(a.cells[i]), y = key(b.cells[i]), nx = parseFloat(x), ny = parseFloat(y);
    const c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
    return up ? c : -c;
  });
  body.append(...rows);
}));
"""


def _figure_html(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def _plots(trials: pd.DataFrame, export: Callable[[int], str] | None, seed_runs: pd.DataFrame | None,
           bins: list[tuple[int, int]]) -> str:
    front = search_front(trials).copy()
    hv = hypervolume_vs_rule(trials)
    compare = compare_table(trials, seed_runs)
    ratio = "" if math.isnan(hv["ratio"]) else f" (search / rule = {hv['ratio']:.2f})"
    shared = "" if math.isnan(hv["shared_ratio"]) else (
        f" Over the ReLU range both cover ({hv['shared_relus_low']:,.0f}–{hv['shared_relus_high']:,.0f}), above "
        f"accuracy {hv['shared_floor_accuracy']:.4f}: search {hv['shared_search_hypervolume']:.4f}, rule "
        f"{hv['shared_rule_hypervolume']:.4f} (search / rule = {hv['shared_ratio']:.2f}).")
    figure = pareto_figure(trials, compare)
    parts = [
        f'<h2>Accuracy vs ReLUs</h2><div id="pareto" data-pareto-points="{len(front)}" '
        f'data-candidates="{len(candidates(trials))}">{_figure_html(figure, "pareto-plot")}</div>',
        "<p class='note'>Pareto front over the searched candidates only (accuracy ↑, ReLUs ↓), each at its highest "
        "fidelity level; rule points and named nets are trained at the same fidelity and seed.</p>",
        "<h2>Hypervolume over trials</h2>" + _figure_html(hypervolume_figure(trials), "hypervolume-plot"),
        f"<p class='note'>Axes accuracy × log10(ReLUs) at level {hv['level']}; reference point: accuracy "
        f"{hv['reference_accuracy']:g} and {hv['reference_relus']:,.0f} ReLUs (10× the largest count measured). "
        f"Final: search {hv['search_hypervolume']:.4f}, rule {hv['rule_hypervolume']:.4f}{ratio}.{shared}</p>",
        "<h2>Insight views</h2><div class='row'>" + _figure_html(width_figure(trials), "width-plot")
        + _figure_html(stage_share_figure(trials), "stage-plot") + "</div>",
    ]
    if bins:
        parts.append("<h2>Searched trials per ReLU bin</h2>" + _table_html(bin_table(trials, bins), BIN_VIEW, "bins"))
    sensitivity = relu_sensitivity(compare, seed_runs) if len(compare) else None
    if sensitivity is not None:  # whether this fidelity can separate the rule's budgets at all
        style = "empty" if sensitivity["text"].startswith("warning:") else "note"
        compare_head = f"<p id='relu-sensitivity' class='{style}'>{html.escape(sensitivity['text'])}.</p>"
    else:
        compare_head = ""
    parts.append("<h2>Search vs DeepReShape rule (per budget)</h2>" + compare_head + (
        _table_html(compare, COMPARE_VIEW, "compare-table") if len(compare) else
        "<p class='note'>No measured DeepReShape rule points in this study (add <code>baselines: deepreshape: "
        "budgets: [...]</code> to the study file).</p>"))
    if export is not None:
        front["export"] = [export(int(n)) for n in front["number"]]
    parts.append(f"<h2>Pareto trials ({len(front)})</h2>" + _table_html(front, PARETO_COLUMNS, "pareto-table"))
    return "\n".join(parts)


def samples_html(png: bytes | None) -> str:
    """The dataset's sample grid (a PNG: one labelled row of training images per class) as an inline image."""
    if not png:
        return ""
    return ("<h2>Sample images</h2><p class='note'>The first training images of each class (a row per class, "
            "labelled with its output index and name), at the search space's resolution and channels: what the "
            f"networks see.</p><img id='samples' alt='sample images per class' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>")


def dashboard_html(trials: pd.DataFrame, facts: Mapping[str, str], export_command: str | None = None,
                   seed_runs: pd.DataFrame | None = None, bins: list[tuple[int, int]] = (),
                   samples: bytes | None = None) -> str:
    """The whole dashboard as one HTML document (plotly.js inlined when there is anything to plot).

    ``facts`` (label → text) is shown as the study-facts table; ``export_command`` is a ``str.format`` template
    with ``{trial}`` (e.g. ``pisearch export runs/x --trial {trial} -o runs/x/exports/trial{trial}``) shown for each
    Pareto trial. ``seed_runs`` (the ``compare: seeds`` re-trainings) add error bars and verdicts; ``bins`` (the
    budget's ReLU bins) a table of searched trials per bin; ``samples`` (a PNG grid of the dataset's images per
    class) is shown below the facts. With no measured candidate the page says so instead of
    plotting; trials that were not measured (failed, pruned, running, infeasible) are listed with their reason.
    """
    df = trials_table(trials)
    shown = candidates(df)
    title = html.escape(str(facts.get("study", "study")))
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td{' class=warn' if 'warning:' in str(v) else ''}>"
                        f"{html.escape(str(v))}</td></tr>" for k, v in facts.items())  # rank agreement warnings
    export = (lambda n: export_command.format(trial=n)) if export_command else None
    if len(shown):
        body = _plots(df, export, seed_runs, list(bins))
    else:
        states = ", ".join(f"{n} {s.lower()}" for s, n in df["state"].value_counts().items()) or "none"
        body = (f"<p class='empty' id='no-trials'>No complete trials with a measured accuracy yet "
                f"({len(df)} trials: {states}) — nothing to plot.</p>")
    unmeasured = df[~df.index.isin(measured(df).index)]
    if len(unmeasured):
        body += (f"<h2>Trials not plotted ({len(unmeasured)})</h2>"
                 + _table_html(unmeasured.sort_values("number"), UNMEASURED_COLUMNS, "unmeasured-table"))
    script = f"<script>{get_plotlyjs()}</script>" if len(shown) else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>pisearch · {title}</title>"
            f"<style>{STYLE}</style>{script}</head><body><h1>pisearch dashboard · {title}</h1>"
            f"<h2>Study</h2><table class='facts'>{fact_rows}</table>{samples_html(samples)}{body}"
            f"<script>{SORT_JS}</script></body></html>")
