"""Named networks as spec constructors, in a registry (``@register_net``, ``net(name, **kw)``).

Every named constructor takes ``resolution``, ``num_classes`` and ``convention``:

* convention ``A`` keeps every ReLU of the standard network (stem ReLU kept: ResNet18 = 557,056 ReLUs at 32²,
  the "557K" of DeepReDuce, CryptoNite and DeepReShape);
* convention ``B`` is SNL's form (``resnet18_in`` / SNL's WideResNet): no ReLU after the stem and none on the
  final BN before pooling, so ResNet18 = 491,520 maskable ReLUs at 32² (SNL's log prints 491520).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pisearch.errors import SpecError
from pisearch.spec.core import OUTER_STAGES, Act, ArchSpec, Stage, Stem

CONVENTIONS = ("A", "B")
NETS: dict[str, Callable[..., ArchSpec]] = {}


def register_net(fn: Callable[..., ArchSpec]) -> Callable[..., ArchSpec]:
    """Register a named-network constructor under its function name."""
    NETS[fn.__name__] = fn
    return fn


def net(name: str, **kwargs) -> ArchSpec:
    """The spec of a registered network by name (e.g. ``net("resnet18", resolution=64)``)."""
    if name not in NETS:
        raise SpecError(f"unknown network {name!r} (known: {', '.join(sorted(NETS))})")
    return NETS[name](**kwargs)


def apply_convention(spec: ArchSpec, convention: str) -> ArchSpec:
    """Convention ``B`` linearizes the stem and head sites (SNL's form); ``A`` returns ``spec`` unchanged."""
    if convention not in CONVENTIONS:
        raise SpecError(f"convention: expected one of A, B, got {convention!r}")
    if convention == "A":
        return spec
    return spec.with_acts({s.name: Act("identity") for s in spec.sites() if s.stage in OUTER_STAGES})


def resnet(
    widths: Sequence[int],
    depths: Sequence[int],
    *,
    block: str = "basic",
    stem_width: int | None = None,
    stem: str = "cifar",
    resolution: int = 32,
    num_classes: int = 10,
    in_channels: int = 3,
    convention: str = "A",
    acts: Mapping[str, Act | str] | str | None = None,
) -> ArchSpec:
    """Generic post-activation ResNet: stage ``i`` has ``depths[i]`` blocks of inner width ``widths[i]``;
    stride 1 for the first stage, 2 after; the stem width defaults to the first stage's width."""
    if len(widths) != len(depths):
        raise SpecError(f"widths/depths: {len(widths)} widths but {len(depths)} depths")
    stages = tuple(
        Stage(depth=d, width=w, stride=1 if i == 0 else 2, block=block) for i, (w, d) in enumerate(zip(widths, depths))
    )
    spec = ArchSpec(
        stages=stages,
        stem=Stem(width=widths[0] if stem_width is None else stem_width, kind=stem),
        num_classes=num_classes,
        resolution=resolution,
        in_channels=in_channels,
        acts=acts if acts is not None else "relu",
    )
    return apply_convention(spec, convention)


def stage_widths(base_width: int, ratios: Sequence[float]) -> tuple[int, ...]:
    """DeepReShape's parameterisation: widths ``m, m·α, m·α·β, …`` (rounded to integers)."""
    widths = [base_width]
    for r in ratios:
        widths.append(max(1, round(widths[-1] * r)))
    return tuple(widths)


@register_net
def resnet18(resolution: int = 32, num_classes: int = 10, convention: str = "A", stem: str = "cifar") -> ArchSpec:
    """ResNet18 (basic blocks 2-2-2-2, widths 64-128-256-512)."""
    return resnet((64, 128, 256, 512), (2, 2, 2, 2), stem=stem, resolution=resolution, num_classes=num_classes,
                  convention=convention)


@register_net
def resnet34(resolution: int = 32, num_classes: int = 10, convention: str = "A", stem: str = "cifar") -> ArchSpec:
    """ResNet34 (basic blocks 3-4-6-3, widths 64-128-256-512)."""
    return resnet((64, 128, 256, 512), (3, 4, 6, 3), stem=stem, resolution=resolution, num_classes=num_classes,
                  convention=convention)


@register_net
def resnet50(resolution: int = 32, num_classes: int = 10, convention: str = "A", stem: str = "cifar") -> ArchSpec:
    """ResNet50 (bottleneck blocks 3-4-6-3, inner widths 64-128-256-512, outputs ×4)."""
    return resnet((64, 128, 256, 512), (3, 4, 6, 3), block="bottleneck", stem=stem, resolution=resolution,
                  num_classes=num_classes, convention=convention)


@register_net
def wrn22_8(resolution: int = 32, num_classes: int = 10, convention: str = "A") -> ArchSpec:
    """WideResNet-22-8 as in SNL's code: pre-activation, 16-channel stem, widths 128/256/512, 3 blocks per
    stage. Convention A keeps the final BN-ReLU (1,392,640 ReLUs at 32²); B drops it (1,359,872)."""
    stages = tuple(Stage(depth=3, width=w, stride=s) for w, s in ((128, 1), (256, 2), (512, 2)))
    spec = ArchSpec(stages=stages, stem=Stem(width=16), num_classes=num_classes, resolution=resolution, preact=True)
    return apply_convention(spec, convention)


HYBRENET_DEPTHS = (2, 2, 2, 2)


def hybrenet(base_width: int, ratios: Sequence[int], *, resolution: int = 32, num_classes: int = 10,
             convention: str = "A", acts: Mapping[str, Act | str] | None = None) -> ArchSpec:
    """DeepReShape's HybReNet parameterisation (Jha & Reagen, arXiv 2304.10593): the ResNet18 backbone
    (basic blocks 2-2-2-2, CIFAR stem of width ``base_width``) with stage widths ``m, m·α, m·α·β, m·α·β·γ``
    for ``ratios`` = (α, β, γ). Widths as in PrivCirNet's ``src/resnet.py`` (see REFERENCES.md §2).
    ``acts`` overrides sites' activations (others ReLU) before ``convention`` applies."""
    return resnet(stage_widths(base_width, ratios), HYBRENET_DEPTHS, resolution=resolution, num_classes=num_classes,
                  convention=convention, acts=acts)


@register_net
def hybrenet_16_553(resolution: int = 32, num_classes: int = 10, convention: str = "A") -> ArchSpec:
    """HybReNet (m=16; α,β,γ = 5,5,3): widths 16-80-400-1200; 343,040 ReLUs at 32², 1,372,160 at 64² (A)."""
    return hybrenet(16, (5, 5, 3), resolution=resolution, num_classes=num_classes, convention=convention)


@register_net
def hybrenet_32_253(resolution: int = 32, num_classes: int = 10, convention: str = "A") -> ArchSpec:
    """HybReNet (m=32; α,β,γ = 2,5,3): widths 32-64-320-960; 372,736 ReLUs at 32², 1,490,944 at 64² (A)."""
    return hybrenet(32, (2, 5, 3), resolution=resolution, num_classes=num_classes, convention=convention)
