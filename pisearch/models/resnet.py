"""``ResNet``: composes a stem, stages of blocks and a classifier from an :class:`ArchSpec`."""

from __future__ import annotations

import torch
from torch import nn

from pisearch.models.acts import make_act
from pisearch.models.blocks import BLOCKS, PreActBlock
from pisearch.spec import ArchSpec


class StemLayer(nn.Module):
    """``cifar``: conv3×3-BN-act; ``imagenet``: conv7×7/2-BN-act-maxpool3×3/2; pre-activation: the conv only."""

    def __init__(self, spec: ArchSpec, act: nn.Module | None) -> None:
        super().__init__()
        c, k = spec.stem.width, spec.stem.kind
        self.conv = nn.Conv2d(spec.in_channels, c, 7 if k == "imagenet" else 3, 2 if k == "imagenet" else 1,
                              3 if k == "imagenet" else 1, bias=False)
        self.bn = None if act is None else nn.BatchNorm2d(c)
        self.act = act
        self.pool = nn.MaxPool2d(3, 2, 1) if k == "imagenet" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.act is not None:
            x = self.act(self.bn(x))
        return x if self.pool is None else self.pool(x)


class Head(nn.Module):
    """Final BN-act of a pre-activation network (site ``head.act``)."""

    def __init__(self, channels: int, act: nn.Module) -> None:
        super().__init__()
        self.bn, self.act = nn.BatchNorm2d(channels), act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class ResNet(nn.Module):
    """A ResNet-family network built from ``spec``; activation modules sit at their site names."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        sites = {s.name: s for s in spec.sites()}
        acts = {name: make_act(act, sites[name]) for name, act in spec.acts}
        self.stem = StemLayer(spec, acts.get("stem.act"))
        c_in = spec.stem.width
        for i, st in enumerate(spec.stages, start=1):
            block = PreActBlock if spec.preact else BLOCKS[st.block]
            n_acts = 3 if block is BLOCKS["bottleneck"] else 2
            blocks = []
            for j in range(st.depth):
                block_acts = [acts[f"layer{i}.{j}.act{k}"] for k in range(1, n_acts + 1)]
                blocks.append(block(c_in, st.width, st.stride if j == 0 else 1, block_acts))
                c_in = st.width * block.expansion
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.n_stages = len(spec.stages)
        self.head = Head(c_in, acts["head.act"]) if spec.preact else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, spec.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def blocks(self) -> list[nn.Module]:
        return [b for i in range(1, self.n_stages + 1) for b in getattr(self, f"layer{i}")]

    def zero_init_residual(self) -> None:
        """Zero the last BN scale of every residual branch, so each block starts as its shortcut."""
        for b in self.blocks():
            nn.init.zeros_(b.last_bn().weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(1, self.n_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        if self.head is not None:
            x = self.head(x)
        return self.fc(torch.flatten(self.pool(x), 1))
