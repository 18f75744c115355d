"""Proxy training of candidates: ``Fidelity`` settings, ``train_proxy`` → ``TrainResult``, ``evaluate``.

Reproducible on CPU: build the model with ``seeded_build(spec, fidelity)`` (weights from ``fidelity.seed``),
then ``train_proxy`` draws the subset, shuffling and augmentation from generators seeded by the same seed.
"""

from pisearch.train.batches import DeviceImages
from pisearch.train.fidelity import Fidelity
from pisearch.train.proxy import TrainResult, evaluate, lr_at, recalibrate_bn, seeded_build, train_proxy

__all__ = ["DeviceImages", "Fidelity", "TrainResult", "evaluate", "lr_at", "recalibrate_bn", "seeded_build",
           "train_proxy"]
