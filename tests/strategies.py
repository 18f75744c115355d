"""Hypothesis strategies for random, small, valid specs (shared by the test modules)."""

import numpy as np
from hypothesis import strategies as st

from pisearch.spec import Act, ArchSpec, Mask, Stage, Stem


@st.composite
def structures(draw):
    preact = draw(st.booleans())
    n = draw(st.integers(1, 4))
    stages = tuple(
        Stage(depth=draw(st.integers(1, 3)), width=draw(st.integers(1, 12)), stride=draw(st.sampled_from([1, 2])),
              block="basic" if preact else draw(st.sampled_from(["basic", "bottleneck"])))
        for _ in range(n)
    )
    stem = Stem(width=draw(st.integers(1, 12)), kind="cifar" if preact else draw(st.sampled_from(["cifar", "imagenet"])))
    return ArchSpec(stages=stages, stem=stem, num_classes=draw(st.integers(2, 7)),
                    resolution=draw(st.integers(8, 40)), in_channels=draw(st.integers(1, 3)), preact=preact)


@st.composite
def specs(draw):
    """A random structure with a random activation (relu/poly/identity/channel- or pixel-masked) per site."""
    base = draw(structures())
    acts = {}
    for site in base.sites():
        choice = draw(st.sampled_from(["relu", "poly", "identity", "channel", "pixel"]))
        if choice in ("channel", "pixel"):
            shape = (site.channels,) if choice == "channel" else (site.channels, site.height, site.width)
            rng = np.random.default_rng(draw(st.integers(0, 2**31)))
            keep = rng.random(shape) < draw(st.floats(0, 1))
            acts[site.name] = Act("relu", Mask.from_array(keep), draw(st.sampled_from(["identity", "poly"])))
        else:
            acts[site.name] = Act(choice)
    return base.with_acts(acts)
