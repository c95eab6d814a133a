"""Tensor.set_grad_home: assigned gradients are copied into a fixed home tensor.

This is how an optimizer's flat grad buffer receives autograd's ``leaf.grad = g``.
"""

from __future__ import annotations

import numpy as np
import pytest

from netcl.core.tensor import Parameter, Tensor, from_numpy, zeros


def param() -> Tensor:
    return Parameter(from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3)))


def filled(value: float, shape: tuple[int, ...] = (2, 3), dtype: str = "float32") -> Tensor:
    return from_numpy(np.full(shape, value, dtype=dtype))


def test_a_matching_grad_is_copied_into_the_home() -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    assert p.grad_home is home and p.grad is None
    g = filled(1.5)
    p.grad = g
    assert p.grad is home
    np.testing.assert_array_equal(home.numpy(), 1.5)
    g.fill_(7.0)  # the assigned tensor is not aliased
    np.testing.assert_array_equal(home.numpy(), 1.5)


def test_none_drops_the_grad_but_keeps_the_home() -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    p.grad = filled(1.0)
    p.grad = None
    assert p.grad is None and p.grad_home is home
    p.grad = filled(2.0)
    assert p.grad is home
    np.testing.assert_array_equal(home.numpy(), 2.0)


def test_a_grad_already_present_moves_into_a_new_home() -> None:
    p, home = param(), zeros((2, 3))
    p.grad = filled(3.0)
    p.set_grad_home(home)
    assert p.grad is home
    np.testing.assert_array_equal(home.numpy(), 3.0)


@pytest.mark.parametrize(
    "grad", [filled(1.0, (3, 2)), filled(1.0, dtype="float16")], ids=["shape", "dtype"]
)
def test_a_grad_that_does_not_fit_the_home_is_kept_as_given(grad: Tensor) -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    p.grad = grad
    assert p.grad is grad
    np.testing.assert_array_equal(home.numpy(), 0.0)


def test_in_place_accumulation_stays_in_the_home() -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    p.grad = filled(1.0)
    grad = p.grad
    assert grad is not None
    grad.add_(filled(0.5))
    assert p.grad is home
    np.testing.assert_array_equal(home.numpy(), 1.5)


@pytest.mark.parametrize(
    ("bad_home", "why"),
    [
        (lambda: zeros((3, 2)), r"shape \(3, 2\)"),
        (lambda: zeros((2, 3), "float16"), "dtype float16"),
        (lambda: zeros((3, 2)).T, r"strides"),
    ],
    ids=["shape", "dtype", "not-contiguous"],
)
def test_a_bad_home_is_refused_and_changes_nothing(bad_home: object, why: str) -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    p.grad = filled(4.0)
    with pytest.raises(ValueError, match=f"set_grad_home: the home must be contiguous.*{why}"):
        p.set_grad_home(bad_home())  # type: ignore[operator]
    assert p.grad_home is home and p.grad is home
    np.testing.assert_array_equal(home.numpy(), 4.0)


def test_removing_the_home_stores_grads_as_given_again() -> None:
    p, home = param(), zeros((2, 3))
    p.set_grad_home(home)
    p.grad = filled(1.0)
    p.set_grad_home(None)
    assert p.grad_home is None
    g = filled(2.0)
    p.grad = g
    assert p.grad is g
    np.testing.assert_array_equal(home.numpy(), 1.0)


def test_a_home_can_be_a_view_into_a_larger_buffer() -> None:
    flat = zeros((10,))
    a, b = param(), Parameter(from_numpy(np.ones(4, np.float32)))
    a.set_grad_home(flat[0:6].reshape(2, 3))
    b.set_grad_home(flat[6:10])
    a.grad, b.grad = filled(1.0), from_numpy(np.full(4, 2.0, np.float32))
    np.testing.assert_array_equal(flat.numpy(), [1.0] * 6 + [2.0] * 4)
