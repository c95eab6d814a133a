"""A tinygrad model trained with netcl's Adam: its OpenCL buffers stepped in place, one launch.

tinygrad (``DEV=CL``) drives OpenCL through the system's loader; netcl through
pyopencl. pyopencl's ``from_int_ptr`` wraps tinygrad's own context, queue and
``cl_mem`` handles, so netcl enqueues on tinygrad's in-order queue and reads
and writes tinygrad's memory with no copy and no synchronisation beyond the
queue's order.

To step every weight in one launch the weights must sit in one buffer. tinygrad
gives each weight a buffer of its own, so this script makes one flat buffer in
tinygrad's context and hands each weight to tinygrad as an OpenCL sub-buffer
of it (``clCreateSubBuffer``: the same memory, at a base-aligned origin; the
few padding elements between weights have zero gradient and stay zero). After
each tinygrad backward the grads are copied into one flat grad buffer; netcl's
``Adam`` then steps the flat buffer, and so every tinygrad weight, in one kernel
launch. The same model trained with tinygrad's own ``nn.optim.Adam`` from the
same start on the same batches must end at the same weights.

    OCL_ICD_VENDORS=<folder with Debian's pocl.icd> DEV=CL python examples/tinygrad_adam.py

(Debian's ``pocl-opencl-icd`` and ``ocl-icd-libopencl1`` give tinygrad an
OpenCL device; ``.ci/run`` sets this up.)
"""

from __future__ import annotations

import ctypes
import importlib
from typing import Any

import numpy as np
import pyopencl as cl
from tinygrad import Device, Tensor, dtypes
from tinygrad import nn as tg_nn
from tinygrad.helpers import Context
from tinygrad.runtime.autogen import opencl as tg_opencl

from netcl.core.tensor import from_buffer
from netcl.optim import Adam

Array = np.ndarray[Any, Any]
# The module (``netcl.optim.functional.adam`` as an attribute is the function).
netcl_adam = importlib.import_module("netcl.optim.functional.adam")
SHAPES = {"w1": (16, 32), "b1": (32,), "w2": (32, 1), "b2": (1,)}
LR, STEPS, BATCH = 1e-2, 30, 64


def pointer(handle: Any) -> int:
    """The address behind one of tinygrad's ctypes OpenCL handles."""
    address = ctypes.cast(handle, ctypes.c_void_p).value
    assert address is not None
    return address


def forward(w: dict[str, Tensor], x: Tensor) -> Tensor:
    return ((x @ w["w1"] + w["b1"]).relu() @ w["w2"] + w["b2"]).reshape(-1)


def initial_weights(rng: np.random.Generator) -> dict[str, Array]:
    return {name: (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
            for name, shape in SHAPES.items()}


class FlatWeights:
    """tinygrad weights that are sub-buffers of one flat buffer, and a flat grad buffer."""

    def __init__(self, start: dict[str, Array], queue: cl.CommandQueue) -> None:
        # Sub-buffer origins must be multiples of the device's base address alignment.
        align = queue.device.mem_base_addr_align // 8 // 4  # bits -> float32 elements
        self.offsets: dict[str, int] = {}
        total = 0
        for name, value in start.items():
            self.offsets[name] = total
            total += -(-value.size // align) * align
        host = np.zeros(total, np.float32)
        for name, value in start.items():
            host[self.offsets[name]:self.offsets[name] + value.size] = value.reshape(-1)
        flags = cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR
        self.params = cl.Buffer(queue.context, flags, hostbuf=host)
        self.grads = cl.Buffer(queue.context, flags, hostbuf=np.zeros_like(host))
        self.total, self.queue = total, queue
        self.subs: list[cl.Buffer] = []  # kept alive: tinygrad's tensors live on them
        self.tensors: dict[str, Tensor] = {}
        for name, value in start.items():
            sub = self.params.get_sub_region(self.offsets[name] * 4, value.nbytes)
            self.subs.append(sub)
            t = Tensor.empty(*value.shape, dtype=dtypes.float32, device="CL")
            t.uop.buffer.allocate(opaque=ctypes.cast(sub.int_ptr, tg_opencl.cl_mem))
            self.tensors[name] = t

    def gather_grads(self) -> None:
        """Copy each tinygrad weight's grad into its place in the flat grad buffer."""
        for name, t in self.tensors.items():
            assert t.grad is not None
            grad = t.grad.contiguous().realize().uop.buffer
            source = cl.Buffer.from_int_ptr(pointer(grad._buf))
            cl.enqueue_copy(self.queue, self.grads, source, byte_count=grad.nbytes,
                            dst_offset=self.offsets[name] * 4)


def main() -> None:
    device = Device["CL"]
    # tinygrad's own context and queue, as pyopencl objects: netcl works on them.
    queue = cl.CommandQueue.from_int_ptr(pointer(device.queue))
    print(f"tinygrad's OpenCL device: {queue.device.name} ({queue.device.platform.version})")
    rng = np.random.default_rng(0)
    start = initial_weights(rng)
    x_all = rng.standard_normal((STEPS, BATCH, 16)).astype(np.float32)
    y_all = np.sin(x_all.sum(axis=2)).astype(np.float32)

    flat = FlatWeights(start, queue)
    param = from_buffer(flat.params, (flat.total,), np.float32, queue)
    param.requires_grad = True
    param.grad = from_buffer(flat.grads, (flat.total,), np.float32, queue)
    ours = Adam([param], lr=LR)

    theirs_w = {name: Tensor(value, device="CL") for name, value in start.items()}
    theirs = tg_nn.optim.Adam(list(theirs_w.values()), lr=LR)

    launches: list[int] = []
    launch_step = netcl_adam.launch_step

    def counted(*args: Any, **kwargs: Any) -> None:
        launches.append(1)
        launch_step(*args, **kwargs)

    netcl_adam.launch_step = counted  # type: ignore[assignment]
    with Context(TRAINING=1):
        for step in range(STEPS):
            x, y = Tensor(x_all[step], device="CL"), Tensor(y_all[step], device="CL")
            loss_ours = ((forward(flat.tensors, x) - y) ** 2).mean()
            for t in flat.tensors.values():
                t.grad = None
            loss_ours.backward()
            flat.gather_grads()
            ours.step()  # one launch over every weight of the tinygrad model
            theirs.zero_grad()
            loss_theirs = ((forward(theirs_w, x) - y) ** 2).mean()
            loss_theirs.backward()
            theirs.step()
            if step % 10 == 0 or step == STEPS - 1:
                print(f"step {step:2d}  loss netcl Adam {loss_ours.item():.6f}   "
                      f"tinygrad Adam {loss_theirs.item():.6f}")
    netcl_adam.launch_step = launch_step  # type: ignore[assignment]

    difference = max(float(np.max(np.abs(flat.tensors[n].numpy() - theirs_w[n].numpy())))
                     for n in SHAPES)
    print(f"netcl Adam kernel launches: {len(launches)} for {STEPS} steps "
          f"of {len(SHAPES)} tinygrad weights")
    print(f"max |weight, netcl Adam - weight, tinygrad Adam| after {STEPS} steps: "
          f"{difference:.2e}")
    if len(launches) != STEPS:
        raise SystemExit(f"expected one launch a step, got {len(launches)}")
    # Both compute Adam in float32 (tinygrad's bias corrections in float32, netcl's in
    # double) and the gradients feed back through the model: a float32 ulp or two of
    # weights below 1 (1.2e-7 each) per step over 30 steps is about 7e-6 (2e-6 measured).
    if not difference < 3e-5:
        raise SystemExit(f"netcl and tinygrad Adam differ by {difference:.2e}")


if __name__ == "__main__":
    main()
