"""The architecture spec: one immutable value that every module passes around.

An :class:`ArchSpec` describes a ResNet-family network completely enough to build it (``pisearch.models``)
and to count its private-inference cost exactly (``pisearch.cost``) without building it. Every activation
*site* (a place where a ReLU sits in the standard network) carries one :class:`Act` choice.

Site names are the module paths of the activation modules in the built model (``stem.act``,
``layer2.0.act1``, ``head.act``), so ``model.get_submodule(site)`` finds a site's module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from pisearch.config import parse_json
from pisearch.errors import SpecError
from pisearch.spec.schema import ACT_KINDS, BLOCK_EXPANSION, ActDoc, parse_act, parse_spec

OUTER_STAGES = ("stem", "head")  # stage labels of the sites outside the residual stages (SNL's convention B drops them)


@dataclass(frozen=True)
class Mask:
    """Which positions of a site keep their ReLU: per channel, shape ``(C,)``, or per pixel, ``(C, H, W)``.

    Stored as little-endian packed bits so a spec with per-pixel masks stays a compact, hashable value.
    """

    shape: tuple[int, ...]
    bits: bytes

    @classmethod
    def from_array(cls, keep: Any) -> Mask:
        """Build from a boolean array (numpy or torch) whose True entries keep the ReLU."""
        arr = np.asarray(keep.detach().cpu() if hasattr(keep, "detach") else keep).astype(bool)
        return cls(tuple(int(s) for s in arr.shape), np.packbits(arr.ravel(), bitorder="little").tobytes())

    def to_array(self) -> np.ndarray:
        """The mask as a boolean numpy array of ``shape``."""
        n = math.prod(self.shape)
        flat = np.unpackbits(np.frombuffer(self.bits, dtype=np.uint8), count=n, bitorder="little")
        return flat.astype(bool).reshape(self.shape)

    @property
    def kept(self) -> int:
        """Number of mask entries that keep their ReLU."""
        return int(self.to_array().sum())

    @property
    def granularity(self) -> str:
        """``channel`` for a ``(C,)`` mask, ``pixel`` for a ``(C, H, W)`` mask."""
        return "channel" if len(self.shape) == 1 else "pixel"

    def to_obj(self) -> dict:
        return {"shape": list(self.shape), "bits": base64.b64encode(self.bits).decode("ascii")}


@dataclass(frozen=True)
class Act:
    """The activation at one site.

    ``kind``: ``relu`` | ``poly`` (degree-2 polynomial, trainable per-channel coefficients) | ``identity``.
    With a ``mask`` (only for ``relu``), masked-off positions compute ``off`` (``identity`` or ``poly``).
    """

    kind: str = "relu"
    mask: Mask | None = None
    off: str = "identity"

    def to_obj(self) -> str | dict:
        if self.mask is None and self.off == "identity":
            return self.kind
        obj: dict[str, Any] = {"kind": self.kind, "off": self.off}
        if self.mask is not None:
            obj["mask"] = self.mask.to_obj()
        return obj


@dataclass(frozen=True)
class Stage:
    """``depth`` blocks of one type; ``width`` is the block's inner width (torchvision's ``planes``).

    The stage outputs ``width * expansion`` channels (expansion 1 for basic, 4 for bottleneck blocks);
    ``stride`` applies to its first block.
    """

    depth: int
    width: int
    stride: int = 1
    block: str = "basic"

    @property
    def out_channels(self) -> int:
        return self.width * BLOCK_EXPANSION.get(self.block, 1)


@dataclass(frozen=True)
class Stem:
    """``cifar``: 3×3 stride-1 conv, no max-pool (PI papers' CIFAR/TinyImageNet form);
    ``imagenet``: 7×7 stride-2 conv + 3×3 stride-2 max-pool."""

    width: int = 64
    kind: str = "cifar"


@dataclass(frozen=True)
class Site:
    """Geometry of one activation site: the tensor entering the activation is ``channels × height × width``."""

    name: str
    stage: str  # "stem", "stage1" … "stageN", "head"
    channels: int
    height: int
    width: int

    @property
    def numel(self) -> int:
        """Scalar activations at this site per single-image inference."""
        return self.channels * self.height * self.width


@dataclass(frozen=True)
class Layer:
    """Geometry of one parameterised layer (``conv``, ``bn`` or ``fc``), named by its module path.

    For ``conv``: ``c_in → c_out`` with a ``kernel``×``kernel`` window at ``stride``, input side ``h_in``,
    output side ``h_out``. For ``bn``: ``c_in == c_out`` channels. For ``fc``: ``c_in → c_out`` features.
    """

    name: str
    kind: str
    c_in: int
    c_out: int
    kernel: int = 1
    stride: int = 1
    h_in: int = 1
    h_out: int = 1


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


class _Walker:
    """Walks a network's structure once, recording activation sites and parameterised layers in order."""

    def __init__(self) -> None:
        self.sites: list[Site] = []
        self.layers: list[Layer] = []

    def conv(self, name: str, c_in: int, c_out: int, kernel: int, stride: int, h: int) -> int:
        h_out = _conv_out(h, kernel, stride, kernel // 2)
        self.layers.append(Layer(name, "conv", c_in, c_out, kernel, stride, h, h_out))
        return h_out

    def bn(self, name: str, c: int, h: int) -> None:
        self.layers.append(Layer(name, "bn", c, c, 1, 1, h, h))

    def site(self, name: str, stage: str, c: int, h: int) -> None:
        self.sites.append(Site(name, stage, c, h, h))


def _walk(stem: Stem, stages: tuple[Stage, ...], in_channels: int, num_classes: int, resolution: int,
          preact: bool) -> _Walker:
    w = _Walker()
    imagenet = stem.kind == "imagenet"
    h = w.conv("stem.conv", in_channels, stem.width, 7 if imagenet else 3, 2 if imagenet else 1, resolution)
    if not preact:
        w.bn("stem.bn", stem.width, h)
        w.site("stem.act", "stem", stem.width, h)
    if imagenet:
        h = _conv_out(h, 3, 2, 1)
    c_in = stem.width
    for i, st in enumerate(stages, start=1):
        label = f"stage{i}"
        for j in range(st.depth):
            s = st.stride if j == 0 else 1
            p = f"layer{i}.{j}"
            c_out = st.out_channels
            if preact:  # act1 on BN(x) at the block input, act2 on BN(conv1(·)); 1x1 shortcut on act1's output
                w.bn(f"{p}.bn1", c_in, h)
                w.site(f"{p}.act1", label, c_in, h)
                h_out = w.conv(f"{p}.conv1", c_in, st.width, 3, s, h)
                w.bn(f"{p}.bn2", st.width, h_out)
                w.site(f"{p}.act2", label, st.width, h_out)
                w.conv(f"{p}.conv2", st.width, st.width, 3, 1, h_out)
                if s != 1 or c_in != c_out:
                    w.conv(f"{p}.shortcut", c_in, c_out, 1, s, h)
            else:
                if st.block == "basic":
                    h_out = w.conv(f"{p}.conv1", c_in, st.width, 3, s, h)
                    w.bn(f"{p}.bn1", st.width, h_out)
                    w.site(f"{p}.act1", label, st.width, h_out)
                    w.conv(f"{p}.conv2", st.width, st.width, 3, 1, h_out)
                    w.bn(f"{p}.bn2", st.width, h_out)
                else:  # bottleneck, stride on the 3x3 conv (torchvision v1.5)
                    w.conv(f"{p}.conv1", c_in, st.width, 1, 1, h)
                    w.bn(f"{p}.bn1", st.width, h)
                    w.site(f"{p}.act1", label, st.width, h)
                    h_out = w.conv(f"{p}.conv2", st.width, st.width, 3, s, h)
                    w.bn(f"{p}.bn2", st.width, h_out)
                    w.site(f"{p}.act2", label, st.width, h_out)
                    w.conv(f"{p}.conv3", st.width, c_out, 1, 1, h_out)
                    w.bn(f"{p}.bn3", c_out, h_out)
                if s != 1 or c_in != c_out:
                    w.conv(f"{p}.downsample.0", c_in, c_out, 1, s, h)
                    w.bn(f"{p}.downsample.1", c_out, h_out)
                w.site(f"{p}.act{3 if st.block == 'bottleneck' else 2}", label, c_out, h_out)
            h, c_in = h_out, c_out
    if preact:  # final BN-ReLU before pooling
        w.bn("head.bn", c_in, h)
        w.site("head.act", "head", c_in, h)
    w.layers.append(Layer("fc", "fc", c_in, num_classes))
    return w


@dataclass(frozen=True)
class ArchSpec:
    """An immutable, validated ResNet-family architecture with one activation choice per site.

    ``acts`` may be given as a mapping ``site -> Act | kind`` or a single kind for every site; missing sites
    default to ``relu``. After construction it is a tuple of ``(site, Act)`` pairs in site order.
    """

    stages: tuple[Stage, ...]
    stem: Stem = Stem()
    num_classes: int = 10
    resolution: int = 32
    in_channels: int = 3
    preact: bool = False
    acts: Any = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        self._validate_structure()
        walk = _walk(self.stem, self.stages, self.in_channels, self.num_classes, self.resolution, self.preact)
        object.__setattr__(self, "_sites", tuple(walk.sites))  # cached geometry (not a field: no eq/hash)
        object.__setattr__(self, "_layers", tuple(walk.layers))
        object.__setattr__(self, "acts", _normalize_acts(self.acts, self._sites))

    def _validate_structure(self) -> None:
        """The fields against the spec format's one set of rules (:class:`~pisearch.spec.schema.SpecDoc`)."""
        parse_spec({"stages": [asdict(st) for st in self.stages], "stem": asdict(self.stem),
                    "num_classes": self.num_classes, "resolution": self.resolution, "in_channels": self.in_channels,
                    "preact": self.preact}, "spec")
        for i, st in enumerate(self.stages):
            if self.preact and st.block != "basic":
                raise SpecError(f"spec: stages[{i}].block: pre-activation networks support only basic blocks")

    # ---- geometry -------------------------------------------------------------------------------------
    def sites(self) -> tuple[Site, ...]:
        """Every activation site, in forward order, with the shape of the tensor entering it."""
        return self._sites

    def layers(self) -> tuple[Layer, ...]:
        """Every conv / BN / fc layer, in forward order, with its shapes (module paths as names)."""
        return self._layers

    @property
    def act_map(self) -> dict[str, Act]:
        return dict(self.acts)

    def with_acts(self, acts: Mapping[str, Act | str]) -> ArchSpec:
        """A copy with the given sites' activations replaced (other sites unchanged)."""
        merged = self.act_map
        for name, act in acts.items():
            if name not in merged:
                raise SpecError(f"acts.{name}: no such activation site")
            merged[name] = act
        return replace(self, acts=merged)

    # ---- serialization --------------------------------------------------------------------------------
    def to_obj(self) -> dict:
        return {
            "stages": [{f.name: getattr(st, f.name) for f in fields(Stage)} for st in self.stages],
            "stem": {"width": self.stem.width, "kind": self.stem.kind},
            "num_classes": self.num_classes,
            "resolution": self.resolution,
            "in_channels": self.in_channels,
            "preact": self.preact,
            "acts": {name: act.to_obj() for name, act in self.acts},
        }

    def to_json(self, indent: int | None = None) -> str:
        """Canonical JSON: sorted keys, no insignificant whitespace (unless ``indent``)."""
        seps = (",", ":") if indent is None else (",", ": ")
        return json.dumps(self.to_obj(), sort_keys=True, separators=seps, indent=indent, ensure_ascii=False)

    @property
    def hash(self) -> str:
        """12-hex-digit content hash of the canonical JSON: identifies an architecture everywhere."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @classmethod
    def from_json(cls, text: str | bytes | Mapping, source: str = "spec") -> ArchSpec:
        """Parse and validate; a problem raises :class:`SpecError` naming ``source``, the key path and the reason."""
        obj = parse_json(text, source, SpecError) if isinstance(text, (str, bytes)) else dict(text)
        doc = parse_spec(obj, source)
        try:
            return cls(stages=tuple(Stage(**st.model_dump()) for st in doc.stages), stem=Stem(**doc.stem.model_dump()),
                       num_classes=doc.num_classes, resolution=doc.resolution, in_channels=doc.in_channels,
                       preact=doc.preact, acts={name: _act(a) for name, a in doc.acts.items()})
        except SpecError as err:
            raise SpecError(f"{source}: {str(err).removeprefix('spec: ')}") from None

    def summary(self) -> str:
        """Short human-readable description, e.g. ``basic 64|64-128-256-512|2-2-2-2 relu17``."""
        kinds: dict[str, int] = {}
        for _, act in self.acts:
            key = act.kind if act.mask is None else "masked"
            kinds[key] = kinds.get(key, 0) + 1
        blocks = "/".join(sorted({st.block for st in self.stages}))
        widths = "-".join(str(st.width) for st in self.stages)
        depths = "-".join(str(st.depth) for st in self.stages)
        acts = " ".join(f"{k}{n}" for k, n in sorted(kinds.items()))
        pre = "preact " if self.preact else ""
        return f"{pre}{blocks} {self.stem.width}|{widths}|{depths} {acts}"


def _act(doc: str | ActDoc) -> Act:
    """The :class:`Act` of a validated activation (a kind, or an :class:`ActDoc`)."""
    if isinstance(doc, str):
        return Act(doc)
    mask = None if doc.mask is None else Mask(tuple(doc.mask.shape), doc.mask.packed())
    return Act(doc.kind, mask, doc.off)


def _act_from_obj(value: Any, where: str) -> Act:
    if isinstance(value, Act):
        return value
    if isinstance(value, str):
        if value not in ACT_KINDS:
            raise SpecError(f"{where}: expected one of {', '.join(ACT_KINDS)}, got {value!r}")
        return Act(value)
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected an activation kind or an object, got {value!r}")
    return _act(parse_act(dict(value), where))


def _normalize_acts(acts: Any, sites: tuple[Site, ...]) -> tuple[tuple[str, Act], ...]:
    if isinstance(acts, str):
        acts = {s.name: acts for s in sites}
    elif isinstance(acts, tuple) and all(isinstance(a, tuple) and len(a) == 2 for a in acts):
        acts = dict(acts)
    elif not isinstance(acts, Mapping):
        raise SpecError(f"acts: expected a mapping from site name to activation, got {type(acts).__name__}")
    by_name = {s.name: s for s in sites}
    unknown = [name for name in acts if name not in by_name]
    if unknown:
        raise SpecError(f"acts.{unknown[0]}: no such activation site (sites: {sites[0].name} … {sites[-1].name})")
    out = []
    for site in sites:
        where = f"acts.{site.name}"
        act = _act_from_obj(acts.get(site.name, "relu"), where)
        if act.mask is not None:
            if act.kind != "relu":
                raise SpecError(f"{where}.mask: a mask needs kind relu, got {act.kind!r}")
            full = (site.channels, site.height, site.width)
            if act.mask.shape not in (full[:1], full):
                raise SpecError(f"{where}.mask.shape: expected {list(full[:1])} or {list(full)}, "
                                f"got {list(act.mask.shape)}")
            if len(act.mask.bits) != (math.prod(act.mask.shape) + 7) // 8:
                raise SpecError(f"{where}.mask.bits: length does not match shape {list(act.mask.shape)}")
        elif act.off != "identity":
            raise SpecError(f"{where}.off: only meaningful with a mask")
        out.append((site.name, act))
    return tuple(out)
