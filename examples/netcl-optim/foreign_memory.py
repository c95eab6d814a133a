"""Stepping another framework's OpenCL memory in place with netcl-optim: no copy.

Needs only netcl-optim (and the netcl-device and netcl-tensor it installs).
The "other framework" here is plain pyopencl: it owns a context and a queue
of its own, and keeps its weights and gradients in its own memory. Two ways
in, each checked against Adam computed in float64 with numpy:

1. The functional form over ``pyopencl.array.Array``: the framework keeps
   all four weights of a small MLP as views of one flat array (as many
   frameworks do), so one ``F.adam`` call over the flat arrays steps every
   weight in one kernel launch.
2. The ``Adam`` class over zero-copy Tensor views (``from_buffer``) of the
   framework's ``pyopencl.Buffer`` objects, their grads wrapped the same way:
   state dicts, schedulers and the rest work as for netcl's own tensors.
   Memory netcl did not allocate is never moved, so each such weight gets a
   launch of its own.

    python examples/netcl-optim/foreign_memory.py
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array

import netcl.optim.functional as F
from netcl.core.device import manager
from netcl.core.tensor import from_buffer
from netcl.optim import Adam, CosineAnnealingLR

Array = np.ndarray[Any, Any]
SHAPES = {"w1": (64, 32), "b1": (32,), "w2": (32, 10), "b2": (10,)}
LR, BETAS, EPS, STEPS = 1e-2, (0.9, 0.999), 1e-8, 25


def adam_float64(p: Array, grads: list[Array], lrs: list[float]) -> Array:
    """PyTorch's Adam on ``p`` in float64, one step per gradient (the reference)."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, lrs, strict=True), start=1):
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        v = BETAS[1] * v + (1 - BETAS[1]) * g * g
        denom = np.sqrt(v) / np.sqrt(1 - BETAS[1] ** t) + EPS
        p = p - lr / (1 - BETAS[0] ** t) * m / denom
    return p


def gradients(rng: np.random.Generator, n: int) -> list[Array]:
    return [rng.standard_normal(n).astype(np.float32) for _ in range(STEPS)]


def functional_over_pyopencl_arrays(queue: cl.CommandQueue, rng: np.random.Generator) -> float:
    """The framework's weights are views of one flat array; one launch steps them all."""
    total = sum(int(np.prod(shape)) for shape in SHAPES.values())
    start = rng.standard_normal(total).astype(np.float32)
    flat = cl_array.to_device(queue, start)
    weights, at = {}, 0
    for name, shape in SHAPES.items():  # what the framework's model holds
        size = int(np.prod(shape))
        weights[name] = flat[at:at + size].reshape(shape)
        at += size
    m, v = cl_array.zeros_like(flat), cl_array.zeros_like(flat)
    grads = gradients(rng, total)
    for t, g in enumerate(grads, start=1):
        flat_grad = cl_array.to_device(queue, g)  # the framework's backward wrote this
        F.adam([flat], [flat_grad], [m], [v], None, [t], lr=LR, beta1=BETAS[0],
               beta2=BETAS[1], eps=EPS, weight_decay=0.0, amsgrad=False, maximize=False)
    expected = adam_float64(start.astype(np.float64), [g.astype(np.float64) for g in grads],
                            [LR] * STEPS)
    # Read back through the framework's own views: they were stepped in place.
    got = np.concatenate([w.get().reshape(-1) for w in weights.values()])
    return float(np.max(np.abs(got - expected)))


def adam_class_over_wrapped_buffers(queue: cl.CommandQueue, rng: np.random.Generator) -> float:
    """The framework's cl.Buffers, wrapped as netcl Tensors without a copy."""
    flags = cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR
    starts = {name: rng.standard_normal(shape).astype(np.float32)
              for name, shape in SHAPES.items()}
    buffers = {name: cl.Buffer(queue.context, flags, hostbuf=a) for name, a in starts.items()}
    grad_buffers = {name: cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, a.nbytes)
                    for name, a in starts.items()}
    params = {name: from_buffer(buffers[name], SHAPES[name], np.float32, queue)
              for name in SHAPES}
    for name, p in params.items():
        p.requires_grad = True
        p.grad = from_buffer(grad_buffers[name], SHAPES[name], np.float32, queue)
    optimizer = Adam(params.values(), lr=LR, betas=BETAS, eps=EPS)
    scheduler = CosineAnnealingLR(optimizer, T_max=STEPS)
    grads = {name: gradients(rng, a.size) for name, a in starts.items()}
    lrs = []
    for step in range(STEPS):
        for name in SHAPES:  # the framework's backward writes its own grad buffers
            cl.enqueue_copy(queue, grad_buffers[name], grads[name][step])
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    error = 0.0
    for name, start in starts.items():
        expected = adam_float64(start.reshape(-1).astype(np.float64),
                                [g.astype(np.float64) for g in grads[name]], lrs)
        got = np.empty_like(start)
        cl.enqueue_copy(queue, got, buffers[name])  # through the framework's own buffer
        error = max(error, float(np.max(np.abs(got.reshape(-1) - expected))))
    return error


def main() -> None:
    # The other framework's own context and queue on netcl's default device.
    context = cl.Context([manager.default().cl_device])
    queue = cl.CommandQueue(context)
    rng = np.random.default_rng(0)
    # Float32 against float64: each step rounds p (|p| < 4, half an ulp: 2.4e-7) and its
    # update once more, so 25 steps admit about 25 * 4.8e-7 = 1.2e-5.
    tolerance = 1.2e-5
    for what, error in [
        ("F.adam over pyopencl arrays (4 weights, 1 launch a step)",
         functional_over_pyopencl_arrays(queue, rng)),
        ("Adam + CosineAnnealingLR over wrapped pyopencl Buffers",
         adam_class_over_wrapped_buffers(queue, rng)),
    ]:
        print(f"{what}: max |netcl - float64 Adam| = {error:.2e}")
        if not error <= tolerance:
            raise SystemExit(f"{what}: error {error:.2e} above {tolerance:.0e}")
    print("both ways stepped the framework's memory in place")


if __name__ == "__main__":
    main()
