"""Naive baseline: linearize whole sites from the last one backwards until the count fits the budget.

Every site after the one where the budget runs out becomes identity, every site before it keeps all its ReLUs,
and that site keeps a uniformly random subset of its units (seeded), sized by the exact-budget selection. No
search: all the training it gets is the common final finetune.
"""

from __future__ import annotations

import torch

from pisearch.linearize.base import Job, Selection, register_method, select_budget


@register_method("naive", off="identity")
def naive(job: Job) -> Selection:
    """Uniform dropping: identity at whole late sites, a random part of the site where the budget runs out."""
    g = torch.Generator().manual_seed(job.settings.seed)
    n = len(job.sites)
    # Site i scores n - i plus a random fraction below 1: earlier sites first, random order inside a site.
    scores = {s.name: (n - i) + torch.rand(s.unit_shape, generator=g) for i, s in enumerate(job.sites)}
    keeps = select_budget(scores, job.sites, job.budget)
    return Selection(keeps, job.model)
