"""What a launch observer hears besides launches: host reads, uploads and effects, and
what elementwise and reduction launches say about themselves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyopencl as cl
import pytest

from netcl.core.device import Device
from netcl.core.tensor import from_numpy, ops
from netcl.core.tensor.launch import host_effect, observing
from netcl.core.tensor.launch_info import ElementwiseLaunch, Operand, ReductionLaunch


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def launched(
        self, device: Device, kernel: cl.Kernel, global_size: tuple[int, ...],
        local_size: tuple[int, ...] | None, args: Sequence[Any], about: object,
    ) -> None:
        self.events.append(("launch", about))

    def host_read(self, what: str) -> None:
        self.events.append(("read", what))

    def host_upload(self, what: str) -> None:
        self.events.append(("upload", what))

    def host_effect(self, effect: Callable[[], None]) -> None:
        self.events.append(("effect", effect))


@pytest.mark.parametrize(
    "read, what",
    [
        (lambda t: t.numpy(), "numpy()"),
        (lambda t: t.item(), "item()"),
        (lambda t: t.tolist(), "tolist()"),
        (lambda t: float(t), "float()"),
        (lambda t: bool(t), "bool() (a Python branch on a tensor's value)"),
    ],
)
def test_every_way_to_read_a_value_back_is_heard(read: Callable[[Any], Any], what: str) -> None:
    t = from_numpy(np.array([2.5], np.float32))
    heard = Heard()
    with observing(heard):
        read(t)
    assert heard.events == [("read", what)]


def test_an_upload_and_a_host_effect_are_heard() -> None:
    heard = Heard()
    ran: list[int] = []
    effect = lambda: ran.append(1)  # noqa: E731
    with observing(heard):
        from_numpy(np.zeros(3, np.float32))
        host_effect(effect)
    assert heard.events == [("upload", "from_numpy"), ("effect", effect)]
    assert ran == [1]  # an effect runs whether or not anyone observes it
    host_effect(effect)
    assert ran == [1, 1]


def test_elementwise_and_reduction_launches_describe_themselves() -> None:
    x = from_numpy(np.arange(12, dtype=np.float32).reshape(3, 4))
    b = from_numpy(np.ones(4, np.float32))
    heard = Heard()
    with observing(heard):
        y = ops.add(x, b)
        s = ops.sum(y, 1)
    (_, add), (_, total) = heard.events
    assert isinstance(add, ElementwiseLaunch) and isinstance(total, ReductionLaunch)
    assert add.expr == "a + b" and add.n == 12
    assert add.out == Operand(y.buffer, y.offset, add.out.strides, y.dtype)
    x_op, b_op = add.operands
    assert x_op.buffer is x.buffer and b_op.buffer is b.buffer
    assert 0 in b_op.strides  # the bias is broadcast over rows
    assert total.input.buffer is y.buffer and total.count == 12
    np.testing.assert_array_equal(s.numpy(), (np.arange(12).reshape(3, 4) + 1).sum(1))
