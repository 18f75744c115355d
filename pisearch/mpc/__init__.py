"""Measured private inference: an export's network run under a real MPC engine (SecretFlow SPU's simulator).

Needs the ``mpc`` extra (``pip install 'pisearch[mpc]'``); jax and spu are imported only when a network is run, so
pisearch imports without them. ``measure_export`` runs an export folder, checks the outputs against PyTorch and writes
``measured.json``; ``measure_model`` measures a model in memory (a study's ``measure:`` stage); ``layer_ops`` and
``run_network`` are the two steps, for specs that were never exported (the cost-model benchmark).
"""

from pisearch.mpc.engine import SPU_PROTOCOLS, NetworkRun, RunCost, check_protocol, run_network, spu_modules
from pisearch.mpc.graph import Op, layer_ops
from pisearch.mpc.measure import (MAX_IMAGES, REPORTED, TOLERANCE, inputs_line, latency_ms, measure_export,
                                  measure_model)

__all__ = ["MAX_IMAGES", "REPORTED", "SPU_PROTOCOLS", "TOLERANCE", "NetworkRun", "Op", "RunCost",
           "check_protocol", "inputs_line", "latency_ms", "layer_ops", "measure_export", "measure_model", "run_network",
           "spu_modules"]
