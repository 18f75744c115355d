"""Architecture specs (import nothing of ours but the leaves ``pisearch.errors`` and ``pisearch.config``)."""

from pisearch.spec.core import OUTER_STAGES, Act, ArchSpec, Layer, Mask, Site, Stage, Stem
from pisearch.spec.nets import CONVENTIONS, NETS, apply_convention, hybrenet, net, register_net, resnet, stage_widths
from pisearch.spec.schema import ACT_KINDS, BLOCK_EXPANSION, OFF_KINDS, STEM_KINDS

__all__ = [
    "ACT_KINDS", "BLOCK_EXPANSION", "CONVENTIONS", "OFF_KINDS", "OUTER_STAGES", "NETS", "STEM_KINDS", "Act",
    "ArchSpec", "Layer", "Mask", "Site", "Stage", "Stem", "apply_convention", "hybrenet", "net", "register_net",
    "resnet", "stage_widths",
]
