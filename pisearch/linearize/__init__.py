"""ReLU-reduction methods from the literature, applied to a trained network to hit an exact ReLU budget.

``linearize(method, model, spec, splits, budget, settings, granularity=...)`` returns the masked spec, its
finetuned model and a report. Methods (registry ``METHODS``, add one with ``@register_method(name, off)``):
``snl`` (SNL), ``autorep`` (AutoReP with DaPa polynomials), ``cd`` (coordinate descent) and ``naive``
(identity at whole late sites). ReLU counts are the exact count of every activation site of the spec
(:func:`pisearch.cost.count` ``relus``), scalar ReLU evaluations per single-image inference.
"""

from pisearch.linearize import autorep, cd, naive, snl  # noqa: F401  (each registers its method)
from pisearch.linearize.base import GRANULARITIES, METHODS, Job, Method, Selection, register_method, select_budget
from pisearch.linearize.distill import kd_loss
from pisearch.linearize.pipeline import check_budget, linearize, linearize_spec_and_weights
from pisearch.linearize.settings import PRESETS, AutoRePSettings, CDSettings, LinearizeSettings, SNLSettings

__all__ = ["GRANULARITIES", "METHODS", "PRESETS", "AutoRePSettings", "CDSettings", "Job", "LinearizeSettings", "Method",
           "SNLSettings", "Selection", "check_budget", "kd_loss", "linearize", "linearize_spec_and_weights",
           "register_method", "select_budget"]
