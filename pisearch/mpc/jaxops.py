"""Each layer operation of :mod:`pisearch.mpc.graph` as a JAX function of its input values and weights (in that
order: ``op.inputs``, then ``op.params`` by sorted name), the form SPU compiles. JAX is imported lazily."""

from __future__ import annotations

from collections.abc import Callable

from pisearch.mpc.graph import Op


def program(op: Op) -> Callable:
    """The JAX function computing ``op`` (arguments: input values, then weights by sorted name)."""
    import jax
    import jax.numpy as jnp

    a = op.attrs

    def conv(x, b, w):
        p = a["padding"]
        y = jax.lax.conv_general_dilated(x, w, (a["stride"],) * 2, [(p, p), (p, p)],
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + b[None, :, None, None]

    def poly(x, coef):
        c = coef.reshape(1, -1, 3, *([1] * (x.ndim - 2)))
        return (c[:, :, 0] * x + c[:, :, 1]) * x + c[:, :, 2]

    def gather(x):
        return jnp.take(x.reshape(x.shape[0], -1) if a["flat"] else x, a["index"], axis=1)

    def merge(*parts):
        y = jnp.take(jnp.concatenate(parts, axis=1), a["order"], axis=1)
        return y.reshape(y.shape[0], *a["shape"]) if a["flat"] else y

    def maxpool(x):
        p = a["padding"]
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, a["kernel"], a["kernel"]),
                                     (1, 1, a["stride"], a["stride"]), [(0, 0), (0, 0), (p, p), (p, p)])

    functions = {
        "conv": conv,
        "affine": lambda x, scale, shift: x * scale[None, :, None, None] + shift[None, :, None, None],
        "relu": lambda x: jnp.maximum(x, 0),
        "poly": poly,
        "gather": gather,
        "merge": merge,
        "add": lambda x, y: x + y,
        "maxpool": maxpool,
        "avgpool": lambda x: jnp.mean(x, axis=(2, 3), keepdims=True),
        "flatten": lambda x: x.reshape(x.shape[0], -1),
        "linear": lambda x, b, w: x @ w.T + b,
    }
    fn = functions[op.kind]
    fn.__name__ = op.name  # SPU's profile names each run by its function
    return fn


def arguments(op: Op, values: dict) -> list:
    """``op``'s arguments in :func:`program`'s order, its input values looked up in ``values``."""
    return [values[name] for name in op.inputs] + [op.params[k] for k in sorted(op.params)]


def run_plain(ops: list[Op], x) -> object:
    """The output of ``ops`` on ``x`` in plaintext JAX (float32): the reference the engine's output is held to."""
    values = {"input": x}
    for op in ops:
        values[op.name] = program(op)(*arguments(op, values))
    return values[ops[-1].name]
