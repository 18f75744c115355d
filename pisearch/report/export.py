"""The export folder of one architecture: what a user trains fully, deploys in a PI framework and cites.

``write_export`` writes ``arch.json`` (the canonical spec), ``model.safetensors`` (weights; never pickle),
``model.onnx`` (opset 17, dynamic batch), ``MODEL_CARD.md`` and ``metrics.json``; ``load_export`` reads it back.
ONNX needs the ``export`` extra (``onnx``; ``onnxruntime`` to run the graph). No Optuna here: callers pass the
spec, the model and what was measured.

ReLU counts are scalar ReLU evaluations per single-image inference: ``relus`` is the exact count of every
activation site of the spec, ``relus_b`` SNL's convention B (stem and head sites excluded).
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from pisearch import __version__
from pisearch.cost import Cost, count, estimate
from pisearch.config import read_text
from pisearch.errors import UserError
from pisearch.models import build
from pisearch.spec import ArchSpec

OPSET = 17
PROTOCOLS = ("delphi", "sci", "cheetah")
NETWORKS = ("lan", "wan")
ROUND_TRIP_ATOL = 1e-5  # max |Δlogit| between the given model and the one rebuilt from the written files


def write_export(out_dir: str | Path, spec: ArchSpec, model: nn.Module, metrics: dict, *, reproduce: str = "",
                 extra: dict | None = None) -> Path:
    """Write the export folder of ``spec`` with ``model``'s weights into ``out_dir`` and return its path.

    ``metrics`` says what was measured: ``accuracy`` (validation top-1 in [0, 1]) and, when known, ``dataset``,
    ``fidelity`` (the training settings, a dict) and ``level`` (the study's fidelity level), plus anything else
    JSON-able (e.g. ``study``, ``trial``, ``weights``, ``trained_by``: the pisearch version that trained it);
    ``metrics.json`` holds it with the exact cost, the protocol estimates and this pisearch's version. ``extra``
    (JSON-able) is stored as ``metrics.json["extra"]`` and listed in the card.
    ``reproduce`` is the command that rebuilds the folder.

    Files are written into a temporary sibling folder and renamed into place, so a failure leaves nothing;
    an existing export at ``out_dir`` is replaced, any other non-empty folder is refused (``UserError``).
    Before the rename, the folder is checked: ``build(spec)`` loads the weights and gives ``model``'s outputs,
    and the Relu nodes of ``model.onnx`` produce exactly ``count(spec).relus`` elements per image (ValueError
    otherwise: the model does not implement the spec).
    """
    out_dir = check_export_target(out_dir)
    onnx = _require_onnx()
    model = copy.deepcopy(model).cpu().float().eval()
    cost = count(spec)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / "arch.json").write_text(spec.to_json())
        save_model(model, str(tmp / "model.safetensors"))
        _check_round_trip(tmp, model)
        _write_onnx(model, spec, tmp / "model.onnx")
        onnx_relus = onnx_relu_count(tmp / "model.onnx", onnx)
        if onnx_relus != cost.relus:
            raise ValueError(f"model.onnx evaluates {onnx_relus} ReLUs per image but the spec counts {cost.relus}: "
                             f"the model does not implement the spec")
        record = {**metrics, "pisearch_version": __version__, "spec_hash": spec.hash,
                  "cost": cost.to_dict(tables=False), "relus_onnx": onnx_relus, "estimates": estimates(cost),
                  "extra": extra or {}}
        (tmp / "metrics.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
        (tmp / "MODEL_CARD.md").write_text(model_card(spec, cost, record, reproduce))
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def check_export_target(out_dir: str | Path) -> Path:
    """``out_dir`` as a Path if an export may be written there (nothing, an empty folder or an earlier export);
    anything else raises one UserError line. Commands call it before they train or read anything."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not _replaceable(out_dir):
        raise UserError(f"{out_dir}: exists and is not an export folder (no arch.json); refusing to overwrite it")
    return out_dir


def load_export(path: str | Path) -> tuple[ArchSpec, nn.Module]:
    """The spec and the model (eval mode, CPU) of an export folder; weights are read with safetensors."""
    path = Path(path)
    for name in ("arch.json", "model.safetensors"):
        if not (path / name).is_file():
            raise UserError(f"{path}: not an export folder ({name} is missing)")
    spec = ArchSpec.from_json(read_text(path / "arch.json"), source=str(path / "arch.json"))
    model = build(spec)
    try:
        load_model(model, str(path / "model.safetensors"), strict=True)
    except (RuntimeError, SafetensorError) as err:
        why = " ".join(line.strip() for line in str(err).splitlines())
        raise UserError(f"{path / 'model.safetensors'}: weights do not fit arch.json ({why[:300]})") from None
    return spec, model.eval()


def onnx_relu_count(path: str | Path, onnx=None) -> int:
    """Scalar ReLU evaluations per image in an ONNX graph: Σ over Relu nodes of their output size without the
    batch axis, from ONNX shape inference (every such size must be static)."""
    onnx = onnx or _require_onnx()
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    shapes = {v.name: v.type.tensor_type.shape for v in [*graph.value_info, *graph.output]}
    total = 0
    for node in graph.node:
        if node.op_type != "Relu":
            continue
        dims = shapes[node.output[0]].dim[1:]
        if not all(d.HasField("dim_value") for d in dims):
            raise ValueError(f"{path}: Relu node {node.name} has a non-static output shape")
        total += int(np.prod([d.dim_value for d in dims]))
    return total


def estimates(cost: Cost) -> dict[str, dict[str, dict[str, float]]]:
    """Protocol estimates for every protocol × network of the card: ``{protocol: {network: {latency_ms,
    total_ms, comm_mb}}}`` (online latency and total in ms, online + offline communication in MB)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for proto in PROTOCOLS:
        for net in NETWORKS:
            est = estimate(cost, proto, net)
            out.setdefault(proto, {})[net] = {"latency_ms": est.latency_ms, "total_ms": est.total_ms,
                                              "comm_mb": est.comm_mb}
    return out


def model_card(spec: ArchSpec, cost: Cost, record: dict, reproduce: str = "") -> str:
    """``MODEL_CARD.md``: cost with its ReLU convention, accuracy and where it was measured, the class each output
    names (``record["classes"]``, when known), per-site table, protocol estimates, provenance and the command that
    reproduces the folder."""
    lines = [
        f"# {spec.summary()}",
        "",
        f"Architecture `{spec.hash}` exported by pisearch {__version__}. Load it with `pisearch.load(FOLDER)` "
        f"(PyTorch, eval mode) or run `model.onnx` (opset {OPSET}, input `input` N×{spec.in_channels}×"
        f"{spec.resolution}×{spec.resolution}, output `logits` N×{spec.num_classes}).",
        "",
        "## Cost per single-image inference",
        "",
        "| quantity | value |",
        "| --- | --- |",
        f"| ReLUs — exact count of every activation site of this spec | {cost.relus:,} |",
        f"| ReLUs — convention B (SNL: stem and head sites excluded) | {cost.relus_b:,} |",
        f"| degree-2 polynomial evaluations | {cost.polys:,} |",
        f"| MACs (conv + fc) | {cost.macs:,} |",
        f"| parameters | {cost.params:,} |",
        "",
        f"Checked at export: the Relu nodes of `model.onnx` produce {record['relus_onnx']:,} elements per image.",
        "",
        "## Accuracy",
        "",
        _accuracy_text(record),
        *_classes_section(record.get("classes")),
        "",
        "## Activation sites",
        "",
        "| site | stage | kind | C×H×W | ReLUs | polys |",
        "| --- | --- | --- | --- | ---: | ---: |",
        *(f"| {s.name} | {s.stage} | {s.kind} | {'×'.join(map(str, s.shape))} | {s.relus:,} | {s.polys:,} |"
          for s in cost.sites),
        "",
        "## Private-inference estimates (pisearch.cost.protocols)",
        "",
        "| protocol | network | online latency (ms) | online + offline (ms) | communication (MB) |",
        "| --- | --- | ---: | ---: | ---: |",
        *(f"| {p} | {n} | {e['latency_ms']:,.1f} | {e['total_ms']:,.1f} | {e['comm_mb']:,.1f} |"
          for p, by_net in record["estimates"].items() for n, e in by_net.items()),
        "",
        "Estimates model one inference from published per-ReLU and per-MAC costs of each protocol; they rank "
        "architectures, they are not measurements.",
    ]
    if record.get("extra"):
        lines += ["", "## Details", "", *(f"- {k}: {_inline(v)}" for k, v in sorted(record["extra"].items()))]
    if reproduce:
        lines += ["", "## Reproduce", "", "```bash", reproduce, "```"]
    return "\n".join(lines) + "\n"


def _classes_section(classes: list[str] | None) -> list[str]:
    """Markdown lines naming the class of each output (``logits[:, i]`` is ``classes[i]``); none when unknown."""
    if not classes:
        return []
    return ["", "## Classes", "", "Output `logits[:, i]` scores class i (the dataset's sorted class folder names, or "
            "the names it gave):", "", "| output | class |", "| ---: | --- |",
            *(f"| {i} | {str(name).replace('|', '∣')} |" for i, name in enumerate(classes))]


def _accuracy_text(record: dict) -> str:
    if record.get("accuracy") is None:
        return "Not measured."
    where = f" on the validation split of `{record['dataset']}`" if record.get("dataset") else ""
    text = f"Top-1 **{record['accuracy']:.4f}**{where}"
    if record.get("level") is not None:
        text += f", fidelity level {record['level']}"
    if record.get("weights"):
        text += f" ({record['weights']})"
    text += "."
    if record.get("precision"):
        text += f" Trained in {record['precision']}."
    if record.get("trained_by"):
        text += f" Trained by pisearch {record['trained_by']}."
    if record.get("fidelity"):
        text += f" Training (proxy fidelity): `{json.dumps(record['fidelity'], sort_keys=True)}`."
    if record.get("series"):
        text += f" Series: {record['series']}."
    return text


def _inline(value: object) -> str:
    return f"`{json.dumps(value, sort_keys=True)}`" if isinstance(value, (dict, list)) else str(value)


def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise UserError("export: the onnx package is missing; install pisearch[export]") from None
    return onnx


def _replaceable(out_dir: Path) -> bool:
    return out_dir.is_dir() and ((out_dir / "arch.json").is_file() or not any(out_dir.iterdir()))


def _check_round_trip(folder: Path, model: nn.Module) -> None:
    try:
        spec, rebuilt = load_export(folder)
    except UserError as err:
        raise ValueError(f"{err}: the model does not implement the spec") from None
    x = torch.randn(2, spec.in_channels, spec.resolution, spec.resolution, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = float((rebuilt(x) - model(x)).abs().max())
    if not gap <= ROUND_TRIP_ATOL:
        raise ValueError(f"the model rebuilt from arch.json + model.safetensors differs from the given model by "
                         f"{gap:.3g}: the model does not implement the spec")


def _write_onnx(model: nn.Module, spec: ArchSpec, path: Path) -> None:
    x = torch.zeros(1, spec.in_channels, spec.resolution, spec.resolution)
    # The TorchScript exporter needs only the onnx package (the torch.export one also needs onnxscript) and
    # emits one Relu node per torch.relu call, which the ReLU check above counts.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    tmp.chmod(0o755)  # mkdtemp makes it private; an export is meant to be shared
    for f in tmp.iterdir():
        f.chmod(0o644)
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(out_dir)

