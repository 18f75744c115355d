"""Architecture specs (imports nothing of ours but ``pisearch.errors``)."""

from pisearch.spec.core import ACT_KINDS, OUTER_STAGES, Act, ArchSpec, Layer, Mask, Site, Stage, Stem
from pisearch.spec.nets import CONVENTIONS, NETS, apply_convention, net, register_net, resnet, stage_widths

__all__ = [
    "ACT_KINDS", "CONVENTIONS", "OUTER_STAGES", "NETS", "Act", "ArchSpec", "Layer", "Mask", "Site", "Stage", "Stem",
    "apply_convention", "net", "register_net", "resnet", "stage_widths",
]
