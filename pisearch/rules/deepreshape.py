"""DeepReShape's O(1) redesign rule: a ReLU budget → a HybReNet :class:`ArchSpec`, no training, no search.

Source and status. DeepReShape (Jha & Reagen, arXiv 2304.10593, TMLR 2024) synthesizes HybReNets: ResNet18
backbones whose stage widths ``m, m·α, m·α·β, m·α·β·γ`` put the network's ReLUs in the order of their
criticality; its abstract finds wider networks better at high ReLU counts and networks with more
least-critical ReLUs better at low counts, and calls the redesign O(1). Of the paper, only the abstract and
introduction were readable in the stored copies searched for this module (ar5iv / arXiv HTML of 2304.10593);
the rule's exact text was not. What follows is pisearch's reading, REFERENCES.md §2, not the authors' algorithm:

1. The ratio profile comes from the budget regime: :data:`HIGH_RATIOS` (5,5,3) at budgets of at least
   :data:`HIGH_REGIME_RELUS_PER_PIXEL` ReLUs per input pixel, :data:`LOW_RATIOS` (2,5,3) below (both are the
   configurations of PrivCirNet's DeepReShape configs, ``configs/datasets/DeepReshape/``).
2. ``m`` is the largest multiple of ``width_multiple`` whose exact ReLU count fits the budget. With integer
   ratios every site's C×H×W is linear in ``m``, so the count is ``a + b·m``; ``a`` and ``b`` come from the
   exact counts of the ``m = 1`` and ``m = 2`` specs, and ``m`` is one integer division (then checked with
   :func:`pisearch.cost.count`).
3. Below the smallest such network, whole least-critical stages are linearised in :data:`CULL_SEQUENCE`
   order (DeepReDuce's culling, arXiv 2103.01396: stem + Stage 1, then Stage 4; then DeepReDuce's thinning of
   Stages 2–3, which keeps only the post-add ReLU of each block; finally Stage 2, leaving the most critical
   Stage 3) and ``m`` is recomputed. Criticality order Stage3 > Stage2 > Stage4 > Stage1 is DeepReDuce's
   ResNet18/CIFAR-100 measure [unverified in REFERENCES.md]. The last two steps go beyond REFERENCES.md's
   reading so that budgets down to ≈10K ReLUs at 32² (SNL/AutoReP's 12.9K points) have a rule point.

Counts are scalar ReLU evaluations per single-image inference in the spec's own convention (``A`` keeps the
stem ReLU; ``B``, SNL's form, makes the stem identity, so the budget is met under B's count).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pisearch.cost import count
from pisearch.errors import UserError
from pisearch.spec import ArchSpec, hybrenet

HIGH_RATIOS = (5, 5, 3)
LOW_RATIOS = (2, 5, 3)
# Regime boundary: budget ≥ 200 ReLUs per input pixel (204,800 at 32², 819,200 at 64²) → HIGH_RATIOS.
# Our choice, not the paper's: it sits between the smallest (5,5,3) network at m=8 (171,520 at 32²) and the
# published HybReNets (343K–373K at 32²); the search-vs-rule comparison is where the real crossover shows.
HIGH_REGIME_RELUS_PER_PIXEL = 200


@dataclass(frozen=True)
class Layout:
    """Which stages lose their ReLUs: ``culled`` stages (identity at every site), ``thinned`` stages (identity
    at each block's first site, ``act1``; the post-add ReLU stays)."""

    culled: tuple[str, ...] = ()
    thinned: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = []
        if self.culled:
            parts.append(f"culled {', '.join(self.culled)} (identity at every site)")
        if self.thinned:
            parts.append(f"thinned {', '.join(self.thinned)} (post-add ReLU only)")
        return "; ".join(parts) or "no stage culled"


_S1 = ("stem", "stage1")
CULL_SEQUENCE = (
    Layout(),
    Layout(culled=_S1),
    Layout(culled=(*_S1, "stage4")),
    Layout(culled=(*_S1, "stage4"), thinned=("stage2", "stage3")),
    Layout(culled=(*_S1, "stage4", "stage2"), thinned=("stage3",)),
)


@lru_cache(maxsize=64)
def _linear_sites(layout: Layout) -> tuple[str, ...]:
    """Names of the sites ``layout`` makes identity (site names do not depend on widths or resolution)."""
    return tuple(s.name for s in hybrenet(1, (1, 1, 1)).sites()
                 if s.stage in layout.culled or (s.stage in layout.thinned and s.name.endswith(".act1")))


def rule_spec(base_width: int, ratios: tuple[int, ...], layout: Layout, *, resolution: int = 32,
              num_classes: int = 10, convention: str = "A") -> ArchSpec:
    """The HybReNet ``(base_width; ratios)`` with ``layout``'s stages culled / thinned."""
    return hybrenet(base_width, ratios, resolution=resolution, num_classes=num_classes, convention=convention,
                    acts=dict.fromkeys(_linear_sites(layout), "identity"))


@lru_cache(maxsize=256)
def _line(ratios: tuple[int, ...], layout: Layout, resolution: int, convention: str) -> tuple[int, int]:
    """``(a, b)`` with ReLUs = a + b·m for this profile and layout (exact counts of m = 1 and m = 2)."""
    c1, c2 = (count(rule_spec(m, ratios, layout, resolution=resolution, convention=convention)).relus
              for m in (1, 2))
    return c1 - (c2 - c1), c2 - c1


def regime(budget: int, resolution: int = 32) -> tuple[str, tuple[int, ...]]:
    """``("high", HIGH_RATIOS)`` for budgets ≥ HIGH_REGIME_RELUS_PER_PIXEL · resolution², else ``("low", LOW_RATIOS)``."""
    if budget >= HIGH_REGIME_RELUS_PER_PIXEL * resolution**2:
        return "high", HIGH_RATIOS
    return "low", LOW_RATIOS


@dataclass(frozen=True)
class RuleResult:
    """The rule's answer for one budget, with what it decided and why (counts in ReLUs per image)."""

    spec: ArchSpec
    budget: int
    convention: str
    regime: str
    ratios: tuple[int, ...]
    base_width: int
    width_multiple: int
    layout: Layout
    relus: int
    relus_per_m: int

    @property
    def slack(self) -> int:
        """Budget left unused, in ReLUs."""
        return self.budget - self.relus

    @property
    def slack_fraction(self) -> float:
        """Unused budget as a fraction of the budget."""
        return self.slack / self.budget

    def explain(self) -> str:
        """A few lines saying what the rule chose and why."""
        spec = self.spec
        boundary = HIGH_REGIME_RELUS_PER_PIXEL * spec.resolution**2
        side = "≥" if self.regime == "high" else "<"
        ratios = ",".join(map(str, self.ratios))
        widths = "-".join(str(st.width) for st in spec.stages)
        return "\n".join([
            f"budget {self.budget:,} ReLUs (convention {self.convention}, {spec.resolution}²): {self.regime}-budget regime "
            f"({side} {boundary:,} = {HIGH_REGIME_RELUS_PER_PIXEL} ReLUs/pixel) → ratios (α,β,γ) = ({ratios})",
            f"{self.layout.describe()}: ReLUs = {self.relus_per_m:,}·m → m = {self.base_width} (largest multiple "
            f"of {self.width_multiple} that fits), widths {widths}",
            f"ReLUs {self.relus:,} ≤ budget; slack {self.slack:,} ({100 * self.slack_fraction:.1f}%)",
        ])

    def to_dict(self) -> dict:
        """JSON-able summary (without the spec)."""
        return {"budget": self.budget, "convention": self.convention, "regime": self.regime, "ratios": list(self.ratios),
                "base_width": self.base_width, "width_multiple": self.width_multiple,
                "culled": list(self.layout.culled), "thinned": list(self.layout.thinned), "relus": self.relus,
                "slack": self.slack, "slack_fraction": self.slack_fraction}


def _check_positive(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key}: expected a positive integer, got {value!r}")
    return value


def deepreshape(budget: int, *, resolution: int = 32, num_classes: int = 10, convention: str = "A",
                width_multiple: int = 8) -> RuleResult:
    """Apply the rule (module docstring) to a ReLU ``budget`` (scalar ReLUs per image, in ``convention``'s
    count): the least-culled layout of the regime's profile whose largest fitting ``m`` is at least
    ``width_multiple``. Constant work per call (five layouts at most; their lines are cached).

    Raises :class:`UserError` when the budget is below the smallest network the rule makes.
    """
    _check_positive(budget, "budget")
    _check_positive(width_multiple, "width_multiple")
    name, ratios = regime(budget, resolution)
    for layout in CULL_SEQUENCE:
        a, b = _line(ratios, layout, resolution, convention)
        m = (budget - a) // b // width_multiple * width_multiple
        if m >= width_multiple:
            spec = rule_spec(m, ratios, layout, resolution=resolution, num_classes=num_classes,
                             convention=convention)
            relus = count(spec).relus
            if relus != a + b * m:
                raise RuntimeError(f"ReLU count {relus} is not linear in m for {ratios} {layout}")
            return RuleResult(spec, budget, convention, name, ratios, m, width_multiple, layout, relus, b)
    smallest = a + b * width_multiple
    raise UserError(
        f"budget: {budget:,} ReLUs is below the smallest network the rule makes at {resolution}² (convention "
        f"{convention}, width multiple {width_multiple}): {smallest:,} ReLUs (m={width_multiple}, ratios "
        f"{','.join(map(str, ratios))}, {layout.describe()})"
    )


def deepreshape_rule(budget: int, *, resolution: int = 32, num_classes: int = 10, convention: str = "A",
                     width_multiple: int = 8) -> ArchSpec:
    """The spec :func:`deepreshape` chooses for ``budget`` (see there)."""
    return deepreshape(budget, resolution=resolution, num_classes=num_classes, convention=convention,
                       width_multiple=width_multiple).spec
