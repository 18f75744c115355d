"""What the hardware a proxy trains on can do, as far as it changes results or speed: bf16 units, the CPU model
and its result-relevant flags. ``.ci/run`` prints :func:`machine_line` before the tests, so a failure says on what
it ran; benchmarks print it beside their figures."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from pisearch.errors import UserError

BF16_ENV = "PISEARCH_BF16"  # 1 / 0: what bf16_supported answers, whatever the hardware (tests, other machines)
# CPU flags that change which kernels run, so accuracies and timings: AVX2 / AVX-512 / bf16 / AMX
RESULT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def bf16_supported(device: torch.device | str) -> bool:
    """Whether ``device`` has bfloat16 arithmetic units: a CUDA GPU that says so, or a CPU with AVX512-BF16 or
    AMX tiles (elsewhere bf16 autocast is emulated and slower than fp32). ``$PISEARCH_BF16`` = ``1`` or ``0``
    overrides the detection (to see what a study does on a machine of the other kind)."""
    forced = os.environ.get(BF16_ENV, "").strip()
    if forced:
        if forced not in ("0", "1"):
            raise UserError(f"${BF16_ENV}: expected 1 (bf16 units) or 0 (none), got {forced!r}")
        return forced == "1"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def cpu_model(cpuinfo: str | None = None) -> tuple[str, tuple[str, ...]]:
    """(CPU model name, the :data:`RESULT_FLAGS` it has) from ``/proc/cpuinfo`` (or the text given); the platform's
    processor name and no flags where there is no such file."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first CPU's
    model = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    flags = set(fields.get("flags", "").split())
    return model, tuple(f for f in RESULT_FLAGS if f in flags)


def machine_line() -> str:
    """One line: CPU model, cores this process may use, result-relevant flags, what ``precision: auto`` resolves
    to on the CPU (and why, when forced), and the GPU if torch sees one."""
    model, flags = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    forced = f" (forced by ${BF16_ENV})" if os.environ.get(BF16_ENV, "").strip() else ""
    auto = "bf16" if bf16_supported("cpu") else "fp32"
    gpu = f"; GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{model}, {cores} cores, flags: {' '.join(flags) or 'none of ' + '/'.join(RESULT_FLAGS)}; " \
           f"precision auto on CPU: {auto}{forced}{gpu}"
