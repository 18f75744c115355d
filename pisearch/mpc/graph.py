"""A PyTorch network of pisearch as a list of plain layer operations (``Op``) that an engine runs one by one.

``layer_ops(model)`` traces the model with ``torch.fx`` (pisearch's layer modules kept whole), folds every
BatchNorm that directly follows a convolution into it, and returns the operations in forward order, their weights
as float32 NumPy arrays. A BatchNorm with no convolution before it (pre-activation networks) stays an ``affine``
operation (a per-channel scale and shift).

Operation kinds (``Op.kind``) and what they compute on a value of shape ``(N, …)``:

========== ======================================================================================================
``conv``     2-D convolution (weights ``w`` OIHW, bias ``b``), ``stride``, ``padding``
``affine``   per-channel ``x·scale + shift`` (a BatchNorm no convolution precedes)
``relu``     ReLU
``poly``     ``c2·x² + c1·x + c0`` with ``coef`` of shape ``(K, 3)`` indexed by dim 1 of ``x``
``gather``   ``x.reshape(N, -1)[:, index]`` (``flat``) or ``x[:, index]`` (channels): the kept or dropped units
``merge``    ``concat(inputs, 1)[:, order]``, reshaped to ``shape``: a masked site's parts put back in place
``add``      sum of two values (residual connection)
``maxpool``  max over ``kernel``² windows at ``stride`` with ``padding``
``avgpool``  mean over the spatial axes (global average pooling)
``flatten``  ``x.reshape(N, -1)``
``linear``   ``x @ w.T + b``
========== ======================================================================================================
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import fx, nn

from pisearch.models import MaskedAct, Poly

LEAVES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, Poly, MaskedAct, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Linear,
          nn.Identity)
INPUT = "input"


@dataclass(eq=False)
class Op:
    """One layer operation: ``kind`` (module docstring), its ``name`` (the traced node: the module path with
    ``_`` for ``.``), the names of the values it reads (``inputs``), its weights (``params``, float32 arrays) and
    static settings (``attrs``)."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    params: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LEAVES)


def layer_ops(model: nn.Module) -> list[Op]:
    """The operations of ``model`` (eval mode, BatchNorm folded) in forward order; the first reads ``INPUT`` and
    the last one's output is the model's."""
    model = model.eval()
    graph = _Tracer().trace(model)
    modules = dict(model.named_modules())
    alias: dict[str, str] = {}  # node name -> the value it stands for (identities and placeholders)
    ops: list[Op] = []
    folded: dict[str, Op] = {}  # conv node name -> its op, while a BatchNorm may still fold into it
    for node in graph.nodes:
        args = tuple(alias.get(a.name, a.name) for a in node.args if isinstance(a, fx.Node))
        if node.op == "placeholder":
            alias[node.name] = INPUT
        elif node.op == "output":
            last = args[0]
            if ops[-1].name != last:
                raise ValueError(f"the model's output {last} is not its last operation")
        elif node.op == "call_module":
            module = modules[node.target]
            if isinstance(module, nn.Identity):
                alias[node.name] = args[0]
                continue
            if isinstance(module, nn.BatchNorm2d) and args[0] in folded and len(_users(graph, args[0])) == 1:
                _fold_bn(folded.pop(args[0]), module, node.name, alias)
                continue
            new = _module_ops(node.name, module, args)
            ops.extend(new)
            if isinstance(module, nn.Conv2d):
                folded[node.name] = new[-1]
        elif node.op == "call_function" and node.target is operator.add:
            ops.append(Op(node.name, "add", args))
        elif node.op == "call_function" and node.target is torch.flatten:
            ops.append(Op(node.name, "flatten", args))
        else:
            raise ValueError(f"layer_ops: unsupported graph node {node.op} {node.target}")
    for op in ops:
        op.inputs = tuple(alias.get(i, i) for i in op.inputs)
    return ops


def _users(graph: fx.Graph, name: str) -> list[fx.Node]:
    return [n for n in graph.nodes if any(isinstance(a, fx.Node) and a.name == name for a in n.args)]


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().numpy().copy()


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _fold_bn(conv: Op, bn: nn.BatchNorm2d, bn_name: str, alias: dict[str, str]) -> None:
    """Fold ``bn`` into the convolution ``conv`` (in place); the BatchNorm's output becomes the conv's."""
    scale, shift = (_array(t) for t in _bn_affine(bn))
    conv.params["w"] = conv.params["w"] * scale[:, None, None, None]
    conv.params["b"] = conv.params["b"] * scale + shift
    alias[bn_name] = conv.name


def _module_ops(name: str, m: nn.Module, args: tuple[str, ...]) -> list[Op]:
    """The operations of one leaf module (a masked activation gives several)."""
    if isinstance(m, nn.Conv2d):
        bias = m.bias if m.bias is not None else torch.zeros(m.out_channels)
        return [Op(name, "conv", args, {"w": _array(m.weight), "b": _array(bias)},
                   {"stride": m.stride[0], "padding": m.padding[0]})]
    if isinstance(m, nn.BatchNorm2d):
        scale, shift = _bn_affine(m)
        return [Op(name, "affine", args, {"scale": _array(scale), "shift": _array(shift)})]
    if isinstance(m, nn.ReLU):
        return [Op(name, "relu", args)]
    if isinstance(m, Poly):
        return [Op(name, "poly", args, {"coef": _array(m.coef)})]
    if isinstance(m, MaskedAct):
        return _masked_ops(name, m, args[0])
    if isinstance(m, nn.MaxPool2d):
        return [Op(name, "maxpool", args, attrs={"kernel": m.kernel_size, "stride": m.stride, "padding": m.padding})]
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return [Op(name, "avgpool", args)]
    return [Op(name, "linear", args, {"w": _array(m.weight), "b": _array(m.bias)})]  # nn.Linear


def _masked_ops(name: str, m: MaskedAct, x: str) -> list[Op]:
    """A masked site as gathers, a ReLU on the kept units, ``off`` on the dropped ones and a merge (the same
    computation as :class:`~pisearch.models.MaskedAct`)."""
    flat = not m.per_channel
    ops: list[Op] = []
    parts = []
    if m.kept:
        ops += [Op(f"{name}_on", "gather", (x,), attrs={"index": m.on_index.numpy(), "flat": flat}),
                Op(f"{name}_relu", "relu", (f"{name}_on",))]
        parts.append(f"{name}_relu")
    if m.dropped:
        ops.append(Op(f"{name}_off", "gather", (x,), attrs={"index": m.off_index.numpy(), "flat": flat}))
        parts.append(f"{name}_off")
        if isinstance(m.off, Poly):
            coef = _array(m.off.coef.index_select(0, m.off_channel))
            ops.append(Op(f"{name}_poly", "poly", (f"{name}_off",), {"coef": coef}))
            parts[-1] = f"{name}_poly"
    ops.append(Op(name, "merge", tuple(parts), attrs={"order": m.order.numpy(), "shape": m.unit_shape,
                                                      "flat": flat}))
    return ops
