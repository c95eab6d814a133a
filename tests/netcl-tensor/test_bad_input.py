"""Bad input: a TypeError, ValueError or MemoryError naming the bad value, not a crash deeper in."""

from __future__ import annotations

import numpy as np
import pytest

from netcl.core.device import Device
from netcl.core.tensor import empty, ones, ops, rand, tensor, zeros


@pytest.mark.parametrize("value", [np.zeros(3, np.float32), 1.5],
                         ids=["ndarray", "float"])
def test_assigning_a_non_tensor_grad_names_its_type(value: object) -> None:
    t = zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match=f"grad must be a netcl Tensor or None, got "
                       f"{'numpy.ndarray' if isinstance(value, np.ndarray) else 'float'}"):
        t.grad = value  # type: ignore[assignment]
    assert t.grad is None


@pytest.mark.parametrize("count", [10**12, 2**62])
def test_a_tensor_too_large_for_the_device_is_a_memory_error_naming_shape_and_bytes(
    device: Device, count: int,
) -> None:
    before = device.pool.stats()
    with pytest.raises(MemoryError, match=rf"float32 tensor of shape \({count},\).*"
                       rf"{4 * count:,} bytes"):
        zeros(count)
    assert device.pool.stats().bytes_in_use == before.bytes_in_use


@pytest.mark.parametrize("make", [zeros, ones, empty, rand])
def test_a_non_integer_dimension_is_a_type_error(make: object) -> None:
    with pytest.raises(TypeError, match=r"dimension 3.7 is a float, not an integer"):
        make((3.7,))  # type: ignore[operator]
    with pytest.raises(TypeError, match=r"dimension '2' is a str"):
        make((2, "2"))  # type: ignore[operator]


def test_reshape_refuses_a_non_integer_dimension_and_accepts_numpy_integers() -> None:
    t = zeros(6)
    with pytest.raises(TypeError, match=r"dimension 1\.5 is a float"):
        t.reshape(4, 1.5)  # type: ignore[arg-type]
    assert t.reshape(np.int64(2), 3).shape == (2, 3)
    assert zeros(np.int32(4)).shape == (4,)


def test_another_frameworks_tensor_as_an_operand_is_named() -> None:
    torch = pytest.importorskip("torch")
    x = tensor([1.0, 2.0])
    with pytest.raises(TypeError, match=r"matmul: operands must be netcl Tensors, got "
                       r"torch.Tensor"):
        ops.matmul(x, torch.ones(2))
    with pytest.raises(TypeError, match=r"mul: operands must be netcl Tensors or numbers, got "
                       r"torch.Tensor"):
        x * torch.ones(1)
