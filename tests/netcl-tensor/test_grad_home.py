"""Tensor.set_grad_home: assigned gradients are copied into a fixed home tensor.

This is how an optimizer's flat grad buffer receives autograd's ``leaf.grad = g``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from conftest import RecordLog

from netcl.core.tensor import Parameter, Tensor, from_numpy, full, ones, zeros


def param(shape: tuple[int, ...] = (2, 3)) -> Tensor:
    return Parameter(from_numpy(np.arange(np.prod(shape), dtype=np.float32).reshape(shape)))


def filled(value: float, shape: tuple[int, ...] = (2, 3), dtype: str = "float32") -> Tensor:
    return from_numpy(np.full(shape, value, dtype=dtype))


@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3), (2, 1, 4)], ids=str)
def test_a_matching_grad_is_copied_into_the_home(shape: tuple[int, ...]) -> None:
    p, home = param(shape), zeros(shape)
    p.set_grad_home(home)
    assert p.grad_home is home and p.grad is None
    g = filled(1.5, shape)
    p.grad = g
    assert p.grad is home and p.grad is not g
    np.testing.assert_array_equal(home.numpy(), np.full(shape, 1.5, np.float32))
    g.fill_(7.0)  # the assigned tensor is not aliased
    np.testing.assert_array_equal(home.numpy(), np.full(shape, 1.5, np.float32))
    home.fill_(-1.0)  # nor is the home aliased by it
    np.testing.assert_array_equal(g.numpy(), np.full(shape, 7.0, np.float32))


def test_a_plain_tensor_takes_a_home_too() -> None:
    t, home = zeros((4,)), zeros((4,))
    t.set_grad_home(home)
    t.grad = full((4,), 2.5)
    assert t.grad is home
    np.testing.assert_array_equal(home.numpy(), [2.5] * 4)


@pytest.mark.parametrize(
    "make_grad",
    [
        lambda: from_numpy(np.arange(6, dtype=np.float32).reshape(3, 2)).T,
        lambda: from_numpy(np.array([1.0, 2.0, 3.0], np.float32)).expand(2, 3),
        lambda: from_numpy(np.arange(12, dtype=np.float32).reshape(2, 6))[:, ::2],
    ],
    ids=["transposed", "broadcast", "strided"],
)
def test_a_non_contiguous_grad_is_copied_element_by_element(
    make_grad: Callable[[], Tensor],
) -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    g = make_grad()
    assert not g.is_contiguous and g.shape == (2, 3)
    expected = g.numpy()
    p.grad = g
    assert p.grad is home and home.is_contiguous
    np.testing.assert_array_equal(home.numpy(), expected)


def test_none_drops_the_grad_but_keeps_the_home() -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    p.grad = filled(1.0)
    p.grad = None
    assert p.grad is None and p.grad_home is home
    p.grad = filled(2.0)
    assert p.grad is home and p.grad_home is home
    np.testing.assert_array_equal(home.numpy(), 2.0)


def test_assigning_the_home_itself_keeps_it() -> None:
    p, home = param(), full((2, 3), 3.0)
    p.set_grad_home(home)
    p.grad = home
    assert p.grad is home
    np.testing.assert_array_equal(home.numpy(), 3.0)


def test_a_grad_already_present_is_copied_into_a_new_home() -> None:
    p, home = param(), zeros((2, 3))
    g = filled(3.0)
    p.grad = g
    p.set_grad_home(home)
    assert p.grad is home and p.grad_home is home
    np.testing.assert_array_equal(home.numpy(), 3.0)
    g.fill_(9.0)  # copied, not aliased
    np.testing.assert_array_equal(home.numpy(), 3.0)


def test_moving_to_another_home_carries_the_grad_along() -> None:
    p, first, second = param(), zeros((2, 3)), zeros((2, 3))
    p.set_grad_home(first)
    p.grad = filled(4.0)
    p.set_grad_home(second)
    assert p.grad is second and p.grad_home is second
    np.testing.assert_array_equal(second.numpy(), 4.0)
    p.grad = filled(5.0)
    np.testing.assert_array_equal(second.numpy(), 5.0)
    np.testing.assert_array_equal(first.numpy(), 4.0)  # the old home is left alone


@pytest.mark.parametrize(
    "make_grad",
    [lambda: filled(1.0, (3, 2)), lambda: filled(1.0, dtype="float16"), lambda: filled(1.0, (6,))],
    ids=["shape", "dtype", "flat"],
)
def test_a_grad_that_does_not_fit_the_home_is_kept_as_given(
    make_grad: Callable[[], Tensor],
) -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    grad = make_grad()
    p.grad = grad
    assert p.grad is grad and p.grad_home is home
    np.testing.assert_array_equal(home.numpy(), 0.0)
    p.grad = filled(2.0)  # a fitting one afterwards lands in the home again
    assert p.grad is home
    np.testing.assert_array_equal(home.numpy(), 2.0)


def test_a_present_grad_that_does_not_fit_a_new_home_stays_as_given() -> None:
    p, home = param(), zeros((2, 3))
    grad = filled(1.0, dtype="float16")
    p.grad = grad
    p.set_grad_home(home)
    assert p.grad is grad and p.grad_home is home
    np.testing.assert_array_equal(home.numpy(), 0.0)


@pytest.mark.parametrize("accumulate", ["add_", "mul_", "copy_"])
def test_in_place_work_on_the_grad_stays_in_the_home(accumulate: str) -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    p.grad = filled(1.0)
    grad = p.grad
    assert grad is not None
    if accumulate == "add_":
        grad.add_(filled(0.5))
    elif accumulate == "mul_":
        grad.mul_(1.5)
    else:
        grad.copy_(filled(1.5))
    assert p.grad is home
    np.testing.assert_array_equal(home.numpy(), 1.5)


BAD_HOMES: list[tuple[Callable[[], Tensor], str]] = [
    (lambda: zeros((3, 2)), r"got shape \(3, 2\)"),
    (lambda: zeros((6,)), r"got shape \(6,\)"),
    (lambda: zeros((2, 3), "float16"), r"dtype float16"),
    (lambda: zeros((3, 2)).T, r"strides \(1, 2\)"),
    (lambda: zeros((2, 6))[:, ::2], r"strides \(6, 2\)"),
]


@pytest.mark.parametrize("had_home", [True, False], ids=["had-home", "no-home"])
@pytest.mark.parametrize(
    ("bad_home", "why"), BAD_HOMES,
    ids=["shape", "flat", "dtype", "transposed", "strided"],
)
def test_a_bad_home_is_refused_and_changes_nothing(
    bad_home: Callable[[], Tensor], why: str, had_home: bool
) -> None:
    p = param()
    home = zeros((2, 3)) if had_home else None
    p.set_grad_home(home)
    given = filled(4.0)
    p.grad = given
    grad_before = p.grad
    assert grad_before is (home if had_home else given)
    bad = bad_home()
    with pytest.raises(ValueError, match=rf"set_grad_home: the home must be contiguous.*{why}"):
        p.set_grad_home(bad)
    assert p.grad_home is home and p.grad is grad_before
    np.testing.assert_array_equal(grad_before.numpy(), 4.0)
    np.testing.assert_array_equal(bad.numpy(), 0.0)  # nothing was copied into the bad home
    again = filled(6.0)  # later grads are stored exactly as before the refusal
    p.grad = again
    if home is not None:
        assert p.grad is home
        np.testing.assert_array_equal(home.numpy(), 6.0)
    else:
        assert p.grad is again


def test_removing_the_home_stores_grads_as_given_again() -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    p.grad = filled(1.0)
    p.set_grad_home(None)
    assert p.grad_home is None
    current = p.grad
    assert current is not None and current is not home  # kept, in memory of its own
    np.testing.assert_array_equal(current.numpy(), 1.0)
    current.add_(filled(1.0))  # no longer writes into the old home
    np.testing.assert_array_equal(home.numpy(), 1.0)
    g = filled(2.0)
    p.grad = g
    assert p.grad is g
    np.testing.assert_array_equal(home.numpy(), 1.0)
    p.grad = None
    assert p.grad is None and p.grad_home is None


def test_storing_a_grad_is_not_recorded_as_an_op(tape: RecordLog) -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    g = Parameter(filled(5.0))  # a grad that itself requires grad, as with create_graph
    p.grad = g
    assert tape.ops == []
    assert p.grad is home and not home.requires_grad
    np.testing.assert_array_equal(home.numpy(), 5.0)
    _ = g * 2.0  # the recorder does hear ops on g: the silence above is the setter's doing
    assert tape.ops == ["mul"]


def test_a_home_can_be_a_view_into_a_larger_buffer() -> None:
    flat = zeros((10,))
    a, b = param(), Parameter(ones((4,)))
    a.set_grad_home(flat[0:6].reshape(2, 3))
    b.set_grad_home(flat[6:10])
    a.grad, b.grad = filled(1.0), full((4,), 2.0)
    assert a.grad is a.grad_home and b.grad is b.grad_home
    np.testing.assert_array_equal(flat.numpy(), [1.0] * 6 + [2.0] * 4)
    b.grad = None  # dropping one grad leaves its range and the neighbour's values alone
    a.grad = filled(3.0)
    np.testing.assert_array_equal(flat.numpy(), [3.0] * 6 + [2.0] * 4)
