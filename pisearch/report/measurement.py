"""Measured private inference in an export folder: ``measured.json`` (one record per SPU protocol, written by
``pisearch measure``) and the model card's section that shows it beside the estimates.

Figures are per single-image inference as party 0 (the client) sees them (see :mod:`pisearch.mpc`): wall seconds in
SPU's single-process simulator (and the CPU seconds of all parties), bytes sent and received, messages sent; online
latency on the ``lan`` / ``wan`` presets adds the transfer of those bytes and one round-trip time per message to the
wall time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pisearch.config import exists, folder_lock, read_json

MEASURED = "measured.json"
CARD = "MODEL_CARD.md"
HEADING = "## Private inference measured under SecretFlow SPU"
AFTER = "## Private-inference estimates"  # the measured section follows the estimates section


def read_measured(folder: str | Path) -> dict[str, dict]:
    """``{protocol: record}`` of an export folder's ``measured.json`` (empty when it has none)."""
    path = Path(folder) / MEASURED
    return read_json(path) if exists(path) else {}


def write_measured(folder: str | Path, protocol: str, record: dict) -> None:
    """Store ``record`` as ``protocol``'s in ``measured.json`` (other protocols' kept) and rewrite the card's
    measured section from the whole file."""
    folder = Path(folder)
    with folder_lock(folder):
        measured = {**read_measured(folder), protocol: record}
        # unsorted: each record's kinds keep the order pisearch.mpc gives them
        _replace(folder / MEASURED, json.dumps(measured, indent=1) + "\n")
        card = folder / CARD
        if card.is_file():
            _replace(card, with_measured(card.read_text(encoding="utf-8"), measured))


def with_measured(card: str, measured: dict[str, dict]) -> str:
    """``card`` (markdown) with its measured section replaced, or inserted after the estimates section (at the end
    when the card has none)."""
    if HEADING in card:
        head, rest = card.split(HEADING, 1)
        tail = rest[rest.index("\n## "):] if "\n## " in rest else "\n"
    elif AFTER in card:
        head, rest = card.split(AFTER, 1)
        cut = rest.index("\n## ") if "\n## " in rest else len(rest)
        head, tail = head + AFTER + rest[:cut].rstrip("\n") + "\n\n", rest[cut:] or "\n"
    else:
        head, tail = card.rstrip("\n") + "\n\n", "\n"
    return head + "\n".join(measured_section(measured)) + "\n" + tail


def measured_section(measured: dict[str, dict]) -> list[str]:
    """Markdown lines: one row per protocol (totals and lan / wan latency), then its cost per kind of operation."""
    lines = [HEADING, "",
             "Per single-image inference, as party 0 (the client) sees it; inputs and weights secret-shared. "
             "Latency = SPU's wall time + bytes / bandwidth + one round trip per message party 0 sends.", "",
             "| protocol | SPU | images | max abs error | wall s | CPU s | sent MB | received MB | messages "
             "| lan latency ms | wan latency ms |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in sorted(measured.items()):
        t = r["per_image"]
        lines.append(f"| {name} | {r['engine']['version']} | {r['images']} | {r['max_abs_error']:.2g} | "
                     f"{t['seconds']:,.2f} | {t['cpu_seconds']:,.2f} | {t['sent_bytes'] / 1e6:,.2f} | "
                     f"{t['recv_bytes'] / 1e6:,.2f} | "
                     f"{t['send_actions']:,.0f} | {r['latency_ms']['lan']:,.0f} | {r['latency_ms']['wan']:,.0f} |")
    lines += ["", "| protocol | operation | wall s | sent MB | received MB | messages |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name, r in sorted(measured.items()):
        lines += [f"| {name} | {kind} | {k['seconds']:,.3f} | {k['sent_bytes'] / 1e6:,.3f} | "
                  f"{k['recv_bytes'] / 1e6:,.3f} | {k['send_actions']:,.0f} |" for kind, k in r["kinds"].items()]
    machines = sorted({r["machine"] for r in measured.values()})
    lines += ["", f"Measured on {'; '.join(machines)} ({', '.join(sorted({r['date'][:10] for r in measured.values()}))}"
              "). A one-time setup per session (base OTs, HE keys) is not included: `measured.json` lists it as "
              "`setup`."]
    return lines


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
