"""Making tensors: host data, fills, ranges, seeded random, _like, and zero-copy interop."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pytest

from netcl.core.device import Device
from netcl.core.tensor import (
    arange,
    empty,
    empty_like,
    from_array,
    from_buffer,
    from_numpy,
    full,
    full_like,
    get_rng_state,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    set_rng_state,
    tensor,
    zeros,
    zeros_like,
)


@pytest.mark.smoke
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32, np.int64, np.bool_])
def test_from_numpy_round_trips_every_dtype(dtype: type, rng: np.random.Generator) -> None:
    host: np.ndarray[Any, Any] = (rng.standard_normal((3, 4)) * 100).astype(dtype)
    t = from_numpy(host)
    assert t.dtype == dtype and t.shape == (3, 4) and t.is_contiguous
    assert np.array_equal(t.numpy(), host)


def test_from_numpy_copies_strided_arrays_and_narrows_float64() -> None:
    host = np.arange(12.0).reshape(3, 4)[:, ::2]
    t = from_numpy(host)
    assert t.dtype == np.float32 and np.array_equal(t.numpy(), host)
    host[:] = -1  # the tensor holds its own copy
    assert t.numpy()[0, 0] == 0.0


def test_tensor_from_python_data() -> None:
    assert tensor(2.5).shape == () and tensor(2.5).item() == 2.5
    assert tensor([[1, 2], [3, 4]]).dtype == np.int64
    assert tensor([1.0, 2.0]).dtype == np.float32
    assert tensor([1, 2], dtype="float16").numpy().tolist() == [1.0, 2.0]
    t = tensor([1.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf
    with pytest.raises(TypeError, match="only floating tensors can require grad"):
        tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="does not support dtype float64"):
        tensor([1.0], dtype="float64")


def test_fills() -> None:
    assert np.array_equal(zeros((2, 3)).numpy(), np.zeros((2, 3), np.float32))
    assert ones(4, dtype="int32").numpy().tolist() == [1, 1, 1, 1]
    filled = full((2, 2), 7.5, dtype="float16")
    assert filled.dtype == np.float16 and np.all(filled.numpy() == 7.5)
    assert full(3, True, dtype="bool").numpy().all()
    assert zeros((0, 5)).numpy().shape == (0, 5)
    assert empty((2, 3), dtype="int64").shape == (2, 3)
    with pytest.raises(ValueError, match="negative dimension"):
        zeros((2, -1))


def test_arange() -> None:
    integers = arange(5)
    assert integers.dtype == np.int64 and integers.tolist() == [0, 1, 2, 3, 4]
    assert arange(2, 11, 3).tolist() == [2, 5, 8]
    floats = arange(0, 1, 0.25)
    assert floats.dtype == np.float32 and floats.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert arange(3, dtype="float16").dtype == np.float16


def test_random_is_reproducible_by_seed() -> None:
    manual_seed(7)
    first = rand((3, 4)).numpy(), randn(5).numpy()
    manual_seed(7)
    second = rand((3, 4)).numpy(), randn(5).numpy()
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    manual_seed(8)
    assert not np.array_equal(rand((3, 4)).numpy(), first[0])
    generated = rand(6, generator=np.random.default_rng(1)).numpy()
    assert np.array_equal(generated, rand(6, generator=np.random.default_rng(1)).numpy())


def test_rng_state_puts_the_draws_back() -> None:
    manual_seed(3)
    rand(2)
    state = get_rng_state()
    draws = rand(5).numpy(), randn(3).numpy()
    rand(7)  # move on, then go back
    set_rng_state(state)
    assert np.array_equal(rand(5).numpy(), draws[0]) and np.array_equal(randn(3).numpy(), draws[1])
    state["state"]["state"] += 1  # the returned state is a copy: editing it changes nothing
    assert get_rng_state()["state"]["state"] != state["state"]["state"]


@pytest.mark.parametrize("bad", [{"bit_generator": "seed"}, {"bit_generator": 3}, "PCG64"])
def test_set_rng_state_refuses_what_is_not_a_bit_generator_state(bad: Any) -> None:
    manual_seed(4)
    expected = rand(3).numpy()
    manual_seed(4)
    with pytest.raises(ValueError, match="is not a numpy bit generator"):
        set_rng_state(bad)
    assert np.array_equal(rand(3).numpy(), expected)  # the generator was left as it was


def test_random_distributions() -> None:
    manual_seed(0)
    uniform = rand(20000).numpy()
    assert uniform.dtype == np.float32 and uniform.min() >= 0.0 and uniform.max() < 1.0
    assert abs(uniform.mean() - 0.5) < 0.01
    normal = randn((200, 100), dtype="float16").numpy().astype(np.float64)
    assert abs(normal.mean()) < 0.02 and abs(normal.std() - 1.0) < 0.02


def test_like_functions_keep_shape_dtype_and_device(device: Device) -> None:
    base = tensor([[1, 2, 3]], dtype="int32", device=device)
    for made, value in [(zeros_like(base), 0), (ones_like(base), 1), (full_like(base, 9), 9)]:
        assert made.shape == (1, 3) and made.dtype == np.int32 and made.device is device
        assert np.all(made.numpy() == value)
    assert zeros_like(base, dtype="float32").dtype == np.float32
    assert empty_like(base).shape == base.shape and empty_like(base).buffer is not base.buffer


def test_from_buffer_shares_memory_both_ways(device: Device) -> None:
    host = np.arange(10, dtype=np.float32)
    flags = cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR
    buffer = cl.Buffer(device.context, flags, hostbuf=host)
    t = from_buffer(buffer, (2, 3), np.float32, device.queue, offset=2, strides=(4, 1))
    assert np.array_equal(t.numpy(), [[2, 3, 4], [6, 7, 8]])
    t.fill_(-1)  # netcl writes, the buffer's owner reads
    seen = np.empty_like(host)
    cl.enqueue_copy(device.queue, seen, buffer)
    assert seen.tolist() == [0, 1, -1, -1, -1, 5, -1, -1, -1, 9]
    with pytest.raises(ValueError, match=r"needs 44 bytes, the buffer has 40"):
        from_buffer(buffer, (11,), np.float32, device.queue)


def test_from_array_and_to_array_are_zero_copy(device: Device) -> None:
    array = cl_array.to_device(device.queue, np.arange(6, dtype=np.float32).reshape(2, 3))
    t = from_array(array)
    assert isinstance(array.base_data, cl.Buffer)
    assert t.buffer.int_ptr == array.base_data.int_ptr
    t.mul_(10)  # netcl writes, pyopencl sees it
    assert array.get().tolist() == [[0, 10, 20], [30, 40, 50]]
    array.fill(2.0)  # pyopencl writes, netcl sees it
    assert t.numpy().tolist() == [[2.0] * 3] * 2

    # A view with an offset (pyopencl reads back contiguous arrays only).
    view = from_numpy(np.arange(12, dtype=np.int32).reshape(3, 4))[1:]
    exported = view.to_array()
    assert exported.get().tolist() == [[4, 5, 6, 7], [8, 9, 10, 11]]
    exported.fill(0)
    assert view.numpy().tolist() == [[0] * 4] * 2
    back = from_array(exported)
    assert back.buffer.int_ptr == view.buffer.int_ptr and back.offset == view.offset == 4
