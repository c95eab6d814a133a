"""The launch chokepoint: every op family enqueues through it, observers see each launch on
their own thread only, a Live argument is read at launch, and threads sharing a kernel
object never mix their arguments."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyopencl as cl
import pytest
from conftest import LaunchLog

from netcl.core.device import Device
from netcl.core.tensor import Tensor, from_numpy, ops
from netcl.core.tensor.launch import Live, enqueue, held, marker, observing

SCALE_SOURCE = """
__kernel void scale(__global float *out, __global const float *x, const float s, const int n) {
    int i = get_global_id(0);
    if (i < n) out[i] = x[i] * s;
}
"""


@pytest.fixture
def log() -> Iterator[LaunchLog]:
    observed = LaunchLog()
    with observing(observed):
        yield observed


def _holds(args: Sequence[Any], t: Tensor) -> bool:
    return any(arg is t.buffer for arg in args)


def test_every_op_family_launches_through_enqueue(device: Device, log: LaunchLog) -> None:
    x = from_numpy(np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), device)
    log.launches.clear()
    families = [
        ("elementwise", lambda: x + x),
        ("reduce", lambda: ops.sum(x, axis=1)),  # reduce_rows, or reduce_strips on a CPU
        ("gather", lambda: ops.index_select(x, 1, [2, 0])),
        ("unfold", lambda: ops.unfold(x, 2)),
        ("matmul", lambda: x.reshape(6, 4) @ x.reshape(4, 6)),
    ]
    for name, run in families:
        log.launches.clear()
        out = run()
        assert any(n.startswith(name) for n in log.names), (name, log.names)
        # The result's memory is an argument of the last launch, as the buffer itself.
        assert _holds(log.launches[-1][2], out), name


def test_observer_sees_launches_of_its_own_thread_only(device: Device, log: LaunchLog) -> None:
    x = from_numpy(np.ones(5, np.float32), device)
    worker = threading.Thread(target=lambda: (x * 2).numpy())
    worker.start()
    worker.join()
    assert log.launches == []
    y = x * 3
    assert log.names == ["elementwise"]
    np.testing.assert_array_equal(y.numpy(), np.full(5, 3, np.float32))


def test_observing_restores_the_previous_observer(device: Device) -> None:
    outer, inner = LaunchLog(), LaunchLog()
    x = from_numpy(np.ones(3, np.float32), device)
    with observing(outer):
        with observing(inner):
            x + x
        x + x
    assert len(inner.launches) == 1 and len(outer.launches) == 1


def test_live_argument_is_read_at_each_launch(device: Device, log: LaunchLog) -> None:
    kernel = device.kernels.kernel_from_source(SCALE_SOURCE, "scale")
    x = from_numpy(np.arange(4, dtype=np.float32), device)
    out = from_numpy(np.zeros(4, np.float32), device)
    current = [2.0]
    factor = Live(lambda: np.float32(current[0]))
    args = (out.buffer, x.buffer, factor, np.int32(4))
    enqueue(device, kernel, (4,), None, args)
    np.testing.assert_array_equal(out.numpy(), np.arange(4, dtype=np.float32) * 2)
    current[0] = -0.5
    enqueue(device, kernel, (4,), None, args)
    np.testing.assert_array_equal(out.numpy(), np.arange(4, dtype=np.float32) * -0.5)
    # The observer gets the Live itself, so a replay can read it again.
    assert log.launches[-1][2][2] is factor


def test_live_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        Live(1.5)  # type: ignore[arg-type]


def test_threads_sharing_a_kernel_get_their_own_arguments(device: Device) -> None:
    # Every thread adds tensors of one shape and dtype, so all launch the same cached
    # kernel object; a switch between one thread's set-args and its enqueue would hand
    # it another thread's operands. A tiny switch interval makes such switches common.
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(4)]
    results: dict[int, list[np.ndarray[Any, Any]]] = {}

    def work(index: int) -> None:
        a = from_numpy(inputs[index], device)
        outs = [a + float(k) for k in range(200)]
        results[index] = [o.numpy() for o in outs]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    for index, outs in results.items():
        for k, got in enumerate(outs):
            np.testing.assert_array_equal(got, inputs[index] + np.float32(k))
    assert len(results) == len(inputs)


def test_fresh_makes_the_tensor_the_constructor_makes(device: Device) -> None:
    buffer = device.pool.allocate(24)
    made = Tensor(buffer, (2, 3), np.float32, device)
    fresh = Tensor.fresh(buffer, (2, 3), np.dtype(np.float32), device)
    assert vars(fresh) == vars(made)


def test_a_plan_is_reused_only_for_the_same_shapes_strides_and_dtypes(device: Device) -> None:
    # One plan per key: an int scalar and a float scalar, a view with another offset and
    # a transposed view each give their own results, in any order.
    base = np.arange(12, dtype=np.int32).reshape(3, 4)
    x = from_numpy(base, device)
    for _ in range(2):
        np.testing.assert_array_equal((x + 1).numpy(), base + 1)
        assert (x + 1.5).dtype == np.float32
        np.testing.assert_array_equal((x + 1.5).numpy(), base + np.float32(1.5))
        np.testing.assert_array_equal((x[1:] * 2).numpy(), base[1:] * 2)
        np.testing.assert_array_equal((x[2:] * 2).numpy(), base[2:] * 2)
        np.testing.assert_array_equal((x.T - x.T).numpy(), np.zeros((4, 3), np.int32))
        np.testing.assert_array_equal((x.T + 0).numpy(), base.T)


def test_held_runs_what_the_block_enqueued_once_it_ends_raising_or_not(device: Device) -> None:
    x = from_numpy(np.arange(4, dtype=np.float32), device)
    with held(device.queue):
        y = ops.mul(x, 2.0)
        enqueued = marker(device.queue)
        device.queue.flush()
        time.sleep(0.05)  # ample for a 4-element multiply, were the queue not held
        status = enqueued.get_info(cl.event_info.COMMAND_EXECUTION_STATUS)
        assert status != cl.command_execution_status.COMPLETE  # nothing ran: the queue is held
    np.testing.assert_array_equal(y.numpy(), np.arange(4, dtype=np.float32) * 2)
    with pytest.raises(KeyError), held(device.queue):
        z = ops.add(x, 1.0)
        raise KeyError("in the block")
    np.testing.assert_array_equal(z.numpy(), np.arange(4, dtype=np.float32) + 1)
