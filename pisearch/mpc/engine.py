"""Run layer operations under SecretFlow SPU's single-process simulator and read back what each one cost.

Every party is a thread with its own SPU runtime; the parties talk over SPU's in-memory link. Each layer operation is
one compiled SPU program: its input values and weights are secret-shared among the parties, and its output share
stays in each party's runtime as the next program's input, so the chain computes the network without ever opening an
intermediate value. Party 0's runtime profiles every run (``enable_pphlo_profile``): its wall time and the bytes and
messages party 0 sends and receives, read from SPU's log. Under two-party protocols party 0's sent + received bytes
are all the traffic; under ABY3 (three parties) they are party 0's links only.

The first image is run twice: the first pass (the warm-up) also pays each runtime's one-time setup (base OTs, HE keys,
the first batch of silent OTs), which :func:`run_network` returns apart from the measured passes.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from pisearch.errors import UserError
from pisearch.mpc.graph import INPUT, Op
from pisearch.mpc.jaxops import arguments, program

# pisearch's name -> (SPU's ProtocolKind, number of parties)
SPU_PROTOCOLS = {"cheetah": ("CHEETAH", 2), "semi2k": ("SEMI2K", 2), "aby3": ("ABY3", 3)}
FIELD = "FM64"  # the 64-bit ring, SPU's default field
FRACTION_BITS = 18  # SPU's default fixed-point fraction bits on FM64 (RuntimeConfig.fxp_fraction_bits = 0)
INSTALL = "pip install 'pisearch[mpc]' (SecretFlow SPU 0.9.5; Python 3.10 or 3.11)"
_HEADER = re.compile(r"SPU execution (\S+) completed.*execution took ([0-9.e+-]+)s")
_LINK = re.compile(r"Link details: total send bytes (\d+), recv bytes (\d+), send actions (\d+), recv actions (\d+)")


@dataclass(frozen=True)
class RunCost:
    """One program run as party 0 sees it: wall ``seconds`` (SPU's profile), ``cpu_seconds`` (CPU time of this
    process over the run: every party's work, unaffected by other load on the machine), bytes party 0 sent and
    received, messages it sent and received (SPU's send / recv actions)."""

    seconds: float
    cpu_seconds: float
    sent_bytes: int
    recv_bytes: int
    send_actions: int
    recv_actions: int


@dataclass(frozen=True)
class NetworkRun:
    """What :func:`run_network` measured: the outputs (``(N, …)`` float32, one row per image), the cost of every
    operation in the warm-up pass (``warmup[k]``, one-time setup included) and in each measured pass
    (``passes[i][k]``: image ``i``, operation ``k``), the SPU version and its runtime settings."""

    outputs: np.ndarray
    warmup: list[RunCost]
    passes: list[list[RunCost]]
    version: str
    settings: dict


def spu_modules():
    """``(spu, libspu, api, frontend)``; a missing SPU raises one UserError line saying how to install it."""
    try:
        import spu
        from spu import api, libspu
        from spu.utils import frontend
    except ImportError:
        raise UserError(f"measure: SecretFlow SPU is not installed; install it with: {INSTALL}") from None
    return spu, libspu, api, frontend


def check_protocol(protocol: str) -> str:
    """``protocol`` if SPU runs it (``cheetah``, ``semi2k``, ``aby3``), else a UserError naming the known ones."""
    if protocol not in SPU_PROTOCOLS:
        raise UserError(f"measure: --protocol: SPU does not run {protocol!r} (known: {', '.join(SPU_PROTOCOLS)})")
    return protocol


def run_network(ops: list[Op], images: np.ndarray, protocol: str) -> NetworkRun:
    """Run ``ops`` (from :func:`~pisearch.mpc.graph.layer_ops`) on each image of ``images`` (``(N, C, H, W)``
    float32, N ≥ 1) under ``protocol``; every input and weight is secret-shared."""
    spu, libspu, api, frontend = spu_modules()
    kind, world = SPU_PROTOCOLS[check_protocol(protocol)]
    config = libspu.RuntimeConfig(protocol=getattr(libspu.ProtocolKind, kind), field=getattr(libspu.FieldType, FIELD))
    config.enable_pphlo_profile = True
    with _spu_log(libspu) as log:
        io = api.Io(world, config)
        secret = libspu.Visibility.VIS_SECRET
        executables = _compile(ops, images[:1], libspu, frontend)
        weights = {op.name: [io.make_shares(op.params[k], secret) for k in sorted(op.params)] for op in ops}
        inputs = [io.make_shares(np.ascontiguousarray(images[i:i + 1]), secret) for i in [0, *range(len(images))]]
        outputs: list[list] = [[] for _ in range(world)]
        cpu: list[float] = []

        def party(rank: int, link) -> None:
            runtime = api.Runtime(link, _rank_config(libspu, config, rank))
            outputs[rank] = _party_chain(runtime, ops, executables, weights, inputs, rank, cpu)

        _run_parties(world, libspu, party)
        costs = _read_costs(log, [op.name for op in ops] * len(inputs), cpu)
    n = len(ops)
    result = np.concatenate([io.reconstruct(list(shares)) for shares in zip(*outputs)][1:])
    settings = {"protocol": kind, "field": FIELD, "parties": world,
                "fxp_fraction_bits": config.fxp_fraction_bits or FRACTION_BITS}
    return NetworkRun(result, costs[:n], [costs[k:k + n] for k in range(n, len(costs), n)], spu.__version__, settings)


def _rank_config(libspu, config, rank: int):
    """``config`` with the profile on for party 0 only."""
    out = libspu.RuntimeConfig(config)
    out.enable_pphlo_profile = rank == 0
    return out


def _party_chain(runtime, ops: list[Op], executables: dict, weights: dict, inputs: list, rank: int,
                 cpu: list[float]) -> list:
    """One party's side of every pass: each operation's program on the shares of its inputs and weights; returns
    the party's share of the last output of each pass. Party 0 appends the process CPU time of each run to
    ``cpu``."""
    out = []
    for image in inputs:
        values = {INPUT: image[rank]}
        for op in ops:
            for i, share in enumerate([values[n] for n in op.inputs] + [w[rank] for w in weights[op.name]]):
                runtime.set_var(f"in{i}", share)
            start = time.process_time()
            runtime.run(executables[op.name])
            if rank == 0:
                cpu.append(time.process_time() - start)
            values[op.name] = runtime.get_var("out0")
        out.append(values[ops[-1].name])
    return out


def _compile(ops: list[Op], image: np.ndarray, libspu, frontend) -> dict:
    """One SPU executable per operation, compiled for the shapes that ``image`` gives along the chain."""
    import jax

    shapes = {INPUT: jax.ShapeDtypeStruct(image.shape, np.float32)}
    executables = {}
    for op in ops:
        fn = program(op)
        args = [np.zeros(a.shape, np.float32) for a in arguments(op, shapes)]
        shapes[op.name] = jax.eval_shape(fn, *args)
        names = [f"in{i}" for i in range(len(args))]
        executables[op.name], _ = frontend.compile(frontend.Kind.JAX, fn, args, {}, names,
                                                   [libspu.Visibility.VIS_SECRET] * len(args), lambda out: ["out0"])
    return executables


def _run_parties(world: int, libspu, party) -> None:
    """Run ``party(rank, link)`` for every rank in its own thread over one in-memory link; re-raise the first
    failure."""
    desc = libspu.link.Desc()
    for rank in range(world):
        desc.add_party(f"party{rank}", f"thread{rank}")
    failures: list[BaseException] = []

    def target(rank: int) -> None:
        try:
            party(rank, libspu.link.create_mem(desc, rank))
        except BaseException as err:  # noqa: BLE001  (re-raised in the caller's thread)
            failures.append(err)

    threads = [threading.Thread(target=target, args=(rank,)) for rank in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


@contextmanager
def _spu_log(libspu) -> Iterator[str]:
    """SPU's log goes to a temporary file (yielded) while the block runs, and nowhere afterwards."""
    with tempfile.TemporaryDirectory(prefix="pisearch-spu-") as folder:
        path = os.path.join(folder, "spu.log")
        _log_to(libspu, path)
        try:
            yield path
        finally:
            _log_to(libspu, os.devnull)


def _log_to(libspu, path: str) -> None:
    options = libspu.logging.LogOptions()
    options.enable_console_logger = False
    options.system_log_path = path
    libspu.logging.setup_logging(options)


def _read_costs(log: str, expected: list[str], cpu: list[float]) -> list[RunCost]:
    """The cost of every profiled run in ``log`` (and its CPU time from ``cpu``), checked against the expected
    program names in order."""
    runs: list[tuple[float, ...]] = []
    names: list[str] = []
    seconds = 0.0
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            if header := _HEADER.search(line):
                names.append(header.group(1))
                seconds = float(header.group(2))
            elif link := _LINK.search(line):
                runs.append((seconds, *(int(v) for v in link.groups())))
    if names != expected or len(runs) != len(expected) or len(cpu) != len(expected):
        raise RuntimeError(f"SPU's profile lists {len(runs)} runs, expected {len(expected)} ({expected[:3]} …)")
    return [RunCost(wall, seconds, *link) for (wall, *link), seconds in zip(runs, cpu)]

