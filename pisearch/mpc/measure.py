"""``measure_export``: run an export folder's network under an SPU protocol, check its outputs against PyTorch and
write what it cost into ``measured.json`` and the model card.

Figures are per single-image inference, as party 0 (the client) sees them: ``seconds`` of wall time in SPU's
single-process simulator on this machine (the parties share its cores, so other load inflates it), ``cpu_seconds``
(this process's CPU time over the same runs: every party's work, unaffected by other load), ``sent_bytes`` /
``recv_bytes`` and ``send_actions`` / ``recv_actions`` (messages). Online latency over a network preset adds to the
wall seconds the transfer of every byte and one round-trip time per message party 0 sends: an upper bound on the
round trips, since SPU counts each message and one round trip may carry several.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pisearch.cost import NETWORKS, Network, count
from pisearch.data import load_dataset
from pisearch.errors import UserError
from pisearch.mpc.engine import RunCost, check_protocol, run_network, spu_modules
from pisearch.mpc.graph import layer_ops
from pisearch.report import load_export, write_measured
from pisearch.spec import ArchSpec
from pisearch.train import DeviceImages, machine_line

TOLERANCE = 1e-2  # most |SPU − PyTorch| allowed, as a fraction of the largest |logit| (at least 1)
MAX_IMAGES = 1000  # images one measurement runs (each a whole private inference: seconds to minutes)
# operation kind (pisearch.mpc.graph) -> the kind measured.json reports it under
REPORTED = {"conv": "convolution", "relu": "relu", "poly": "poly", "maxpool": "pooling", "avgpool": "pooling",
            "linear": "linear", "affine": "batchnorm", "add": "other", "gather": "other", "merge": "other",
            "flatten": "other"}
FIELDS = ("seconds", "cpu_seconds", "sent_bytes", "recv_bytes", "send_actions", "recv_actions")


def measure_export(folder: str | Path, protocol: str, images: int = 1, *, dataset: tuple[str, dict] | None = None,
                   tolerance: float = TOLERANCE) -> dict:
    """Run ``images`` test images of the export at ``folder`` under ``protocol`` (``cheetah``, ``semi2k``, ``aby3``),
    write ``measured.json`` (one record per protocol) and the card's measured section, and return the record.

    Inputs are the first test images of ``dataset`` (its name and :func:`~pisearch.data.load_dataset` arguments: the
    export's, as ``metrics.json`` records them), or without one standard normal images (seed 0): what an inference
    costs does not depend on the input values. Outputs more than ``tolerance``
    × max(1, max |logit|) away from PyTorch's raise a UserError and nothing is written."""
    folder = Path(folder)
    check_protocol(protocol)
    spu_modules()
    spec, model = load_export(folder)
    x, inputs = _images(spec, images, dataset)
    record = measure_model(spec, model, x, protocol, inputs=inputs, tolerance=tolerance, source=str(folder))
    write_measured(folder, protocol, record)
    return record


def measure_model(spec: ArchSpec, model: nn.Module, x: torch.Tensor, protocol: str, *, inputs: str,
                  tolerance: float = TOLERANCE, source: str = "measure") -> dict:
    """The record of one measurement (``measured.json``'s, per protocol): ``model`` (of ``spec``) run on the images
    ``x`` (``(N, C, H, W)``, normalised as in training; ``inputs`` says what they are) under ``protocol``. Outputs
    more than ``tolerance`` × max(1, max |logit|) away from PyTorch's raise a UserError naming ``source``."""
    model = model.eval()
    ops = layer_ops(model)
    run = run_network(ops, x.numpy(), protocol)
    with torch.no_grad():
        reference = model(x).numpy()
    error, scale = float(np.abs(run.outputs - reference).max()), max(1.0, float(np.abs(reference).max()))
    if not error <= tolerance * scale:
        raise UserError(f"measure: {source}: SPU's outputs differ from PyTorch's by {error:.3g}, more than "
                        f"{tolerance:g} × {scale:.3g} (the tolerance × the largest |logit|); nothing written")
    kinds = [REPORTED[op.kind] for op in ops]
    per_op = [_mean([p[k] for p in run.passes]) for k in range(len(ops))]
    total, warmup = _sum(per_op), _sum([asdict(c) for c in run.warmup])
    cost = count(spec)
    record = {
        "protocol": protocol,
        "engine": {"name": "SecretFlow SPU", "version": run.version, **run.settings,
                   "simulator": "single process, parties as threads over an in-memory link",
                   "weights": "secret-shared among the parties, like the input"},
        "machine": machine_line(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "spec_hash": spec.hash,
        "relus": cost.relus,  # convention A: every activation site of the spec, the stem's included
        "polys": cost.polys,
        "images": len(x),
        "inputs": inputs,
        "max_abs_error": error,
        "max_abs_logit": float(np.abs(reference).max()),
        "same_prediction": float(np.mean(run.outputs.argmax(1) == reference.argmax(1))),
        "per_image": {**total, "comm_mb": (total["sent_bytes"] + total["recv_bytes"]) / 1e6},
        "latency_ms": {name: latency_ms(total, net) for name, net in NETWORKS.items()},
        "kinds": {kind: _sum([c for c, k in zip(per_op, kinds) if k == kind])
                  for kind in dict.fromkeys(REPORTED.values()) if kind in kinds},
        "setup": {f: warmup[f] - total[f] for f in FIELDS},
        "layers": [{"name": op.name, "kind": k, **c} for op, k, c in zip(ops, kinds, per_op)],
    }
    return record


def latency_ms(figures: dict, net: Network) -> float:
    """Online latency (ms) of measured ``figures`` over ``net``: wall seconds + every byte through the link + one
    round-trip time per message party 0 sends (module docstring)."""
    return (figures["seconds"] * 1e3 + net.transfer_ms(figures["sent_bytes"] + figures["recv_bytes"])
            + figures["send_actions"] * net.rtt_ms)


def _images(spec: ArchSpec, n: int, dataset: tuple[str, dict] | None) -> tuple[torch.Tensor, str]:
    """``n`` input images (float, normalised as in training) and a line saying what they are: the first test images
    of ``dataset`` (name, load_dataset arguments), or standard normal ones without it."""
    shape = (n, spec.in_channels, spec.resolution, spec.resolution)
    if dataset is None:
        return torch.randn(shape, generator=torch.Generator().manual_seed(0)), f"{n} random N(0, 1) images (seed 0)"
    name, given = dataset
    test = load_dataset(name, resolution=spec.resolution, channels=spec.in_channels, **given).test
    if len(test) < n:
        raise UserError(f"measure: --images: {n} asked, the test split of {name} has {len(test)}")
    return DeviceImages(test, "cpu").batch(torch.arange(n)), inputs_line(name, n)


def inputs_line(dataset: str, n: int) -> str:
    """What ``measured.json`` says the inputs were: the first ``n`` test images of ``dataset``."""
    return f"the first {n} image{'s' if n > 1 else ''} of the test split of {dataset}"


def _mean(costs: list[RunCost]) -> dict:
    return {f: float(np.mean([getattr(c, f) for c in costs])) for f in FIELDS}


def _sum(figures: list[dict]) -> dict:
    return {f: float(sum(c[f] for c in figures)) for f in FIELDS}
