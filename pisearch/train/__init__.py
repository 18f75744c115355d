"""Proxy training of candidates: ``Fidelity`` settings, ``train_proxy`` → ``TrainResult``, ``evaluate``.

Reproducible on CPU: build the model with ``seeded_build(spec, fidelity)`` (weights from ``fidelity.seed``),
then ``train_proxy`` draws the subset, shuffling and augmentation from generators seeded by the same seed.
``zero_init_residual: auto`` and ``precision: auto`` are resolved per network (``zero_init_for``) and per device
(``resolved_precision``; what the hardware can do: ``pisearch.train.hardware``).
"""

from pisearch.train.batches import DeviceImages
from pisearch.train.fidelity import Fidelity
from pisearch.train.hardware import bf16_supported, cpu_model, machine_line
from pisearch.train.proxy import (TrainResult, evaluate, has_non_relu_site, lr_at, recalibrate_bn,
                                  resolved_precision, seeded_build, train_proxy, zero_init_for)

__all__ = ["DeviceImages", "Fidelity", "TrainResult", "bf16_supported", "cpu_model", "evaluate", "has_non_relu_site",
           "lr_at", "machine_line", "recalibrate_bn", "resolved_precision", "seeded_build", "train_proxy",
           "zero_init_for"]
