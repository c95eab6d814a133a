"""Views (reshape, permute, expand, indexing) share memory and match numpy; cat and stack copy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import RecordLog

from netcl.core.device import Device
from netcl.core.tensor import Tensor, from_numpy, ops, tensor, zeros

Array = np.ndarray[Any, Any]
X = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)


@pytest.fixture
def t() -> Tensor:
    return from_numpy(X)


def same(got: Tensor, want: Array) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.array_equal(got.numpy(), want)


def test_reshape_of_contiguous_is_a_view(t: Tensor) -> None:
    out = t.reshape(6, -1)
    same(out, X.reshape(6, -1))
    assert out.buffer is t.buffer
    same(t.reshape((-1,)), X.reshape(-1))
    same(tensor(7.0).reshape(1, 1), np.full((1, 1), 7.0, np.float32))


def test_reshape_of_a_strided_tensor_views_when_it_can_and_copies_when_not(t: Tensor) -> None:
    swapped = t.transpose(2, 3)  # (2, 3, 5, 4): the two leading axes are still contiguous
    merged = swapped.reshape(6, 5, 4)
    assert merged.buffer is t.buffer
    same(merged, X.transpose(0, 1, 3, 2).reshape(6, 5, 4))
    flat = t.transpose(0, 3).reshape(-1)
    assert flat.buffer is not t.buffer and flat.is_contiguous
    same(flat, X.transpose(3, 1, 2, 0).reshape(-1))


def test_view_refuses_what_needs_a_copy(t: Tensor) -> None:
    same(t.transpose(2, 3).view(2, 3, 5, 2, 2), X.transpose(0, 1, 3, 2).reshape(2, 3, 5, 2, 2))
    message = r"\(3, 2, 4, 5\) with strides .* cannot be viewed as \(6, 20\)"
    with pytest.raises(ValueError, match=message):
        t.transpose(0, 1).view(6, 20)


@pytest.mark.parametrize(
    ("shape", "message"),
    [((7, -1), r"cannot reshape shape \(2, 3, 4, 5\) \(120 elements\) into \(7, -1\)"),
     ((-1, -1), "one -1 at most"), ((4, 31), r"into \(4, 31\)")],
)
def test_reshape_errors_name_both_shapes(t: Tensor, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        t.reshape(shape)


def test_transpose_permute_and_t(t: Tensor) -> None:
    same(t.transpose(1, -1), X.swapaxes(1, 3))
    permuted = t.permute(3, 1, 0, 2)
    assert permuted.buffer is t.buffer
    same(permuted, X.transpose(3, 1, 0, 2))
    same(t[0, 0].T, X[0, 0].T)
    with pytest.raises(ValueError, match="not a permutation"):
        t.permute(0, 1, 1, 2)
    with pytest.raises(IndexError, match="dimension 4 is out of range"):
        t.transpose(0, 4)


def test_expand_repeats_without_copying() -> None:
    column = from_numpy(np.array([[1.0], [2.0]], np.float32))
    out = column.expand(3, -1, 4)
    assert out.buffer is column.buffer and out.strides[0] == 0 and out.strides[2] == 0
    same(out, np.broadcast_to(np.array([[1.0], [2.0]], np.float32), (3, 2, 4)))
    with pytest.raises(ValueError, match=r"cannot expand shape \(2, 1\) to \(3, 4\)"):
        column.expand(3, 4)


def test_flatten_squeeze_unsqueeze(t: Tensor) -> None:
    same(t.flatten(), X.reshape(-1))
    same(t.flatten(1, 2), X.reshape(2, 12, 5))
    same(tensor(3.0).flatten(), np.array([3.0], np.float32))
    ones = from_numpy(X[:, :1, None, :, :1])  # (2, 1, 1, 4, 1)
    same(ops.squeeze(ones), X[:, 0, :, 0])
    same(ops.squeeze(ones, (1, -1)), X[:, :1, None, :, :1].squeeze((1, 4)))
    with pytest.raises(ValueError, match=r"dimension 0 of shape \(2, 1, 1, 4, 1\) is not 1"):
        ops.squeeze(ones, 0)
    same(ops.unsqueeze(t, -1), X[..., None])
    same(ops.unsqueeze(t, 1), X[:, None])


INDICES: list[Any] = [
    1,
    -1,
    (1, 2),
    (slice(None), 0),
    (slice(1, None, 2), slice(None, None, -1)),
    (Ellipsis, 3),
    (0, Ellipsis, slice(None, None, -2)),
    (None, 1, None, slice(0, 4, 3)),
    (slice(5, 9),),
    (slice(None), slice(None), slice(-1, 0, -1), 2),
]


@pytest.mark.parametrize("index", INDICES, ids=[str(i) for i in INDICES])
def test_basic_indexing_is_a_view_matching_numpy(t: Tensor, index: Any) -> None:
    out = t[index]
    assert out.buffer is t.buffer
    same(out, X[index])


@pytest.mark.parametrize(
    "index",
    [
        [1, 0, 0],
        (slice(None), [1, -1]),
        (1, slice(None), [[0, 1], [3, 3]]),
        (0, slice(1, None), [1, 2]),
        (Ellipsis, np.array([4, 0])),
        (1, slice(None), 2, [0, 1]),
    ],
    ids=str,
)
def test_integer_array_indexing_matches_numpy(t: Tensor, index: Any) -> None:
    same(t[index], X[index])


def test_tensor_indices_select_too(t: Tensor) -> None:
    same(t[:, tensor([2, 0], dtype="int32")], X[:, [2, 0]])
    same(t[tensor([1], dtype="int64")], X[[1]])
    same(t[tensor(1)], X[1])


@pytest.mark.parametrize(
    ("index", "error", "message"),
    [(2, IndexError, "index 2 is out of range for axis 0 of size 2"),
     ((0, 0, 0, 0, 0), IndexError, "5 indices"),
     ((Ellipsis, Ellipsis), IndexError, "one Ellipsis"),
     ([True, False], TypeError, "integers"),
     ("a", TypeError, "unsupported index 'a'"),
     (([0], [0]), IndexError, "only one integer-array index")],
)
def test_bad_indices_are_refused(t: Tensor, index: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        t[index]


def test_writes_through_an_indexed_view_reach_the_base() -> None:
    base = zeros((3, 4))
    base[1:, ::2].fill_(7)
    base[0][-1].fill_(1)
    want = np.zeros((3, 4))
    want[1:, ::2] = 7
    want[0, -1] = 1
    same(base, want.astype(np.float32))


def test_cat_joins_promotes_and_skips_empty_parts(rng: np.random.Generator) -> None:
    a = rng.standard_normal((2, 3)).astype(np.float32)
    b = rng.integers(0, 9, (2, 4)).astype(np.int32)
    out = ops.cat([from_numpy(a), from_numpy(b), zeros((2, 0))], -1)
    assert out.dtype == np.float32
    same(out, np.concatenate([a, b.astype(np.float32)], 1))
    view = from_numpy(a).T
    same(ops.cat([view, view[:1]]), np.concatenate([a.T, a.T[:1]]))


def test_cat_errors(device: Device) -> None:
    before = device.pool.stats().bytes_in_use
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(3, 3\) differ outside axis 1"):
        ops.cat([zeros((2, 3)), zeros((3, 3))], 1)
    with pytest.raises(ValueError, match="at least one tensor"):
        ops.cat([])
    with pytest.raises(ValueError, match="different devices"):
        ops.cat([zeros(2), tensor([1.0], device=Device(device.cl_device, "other"))])
    assert device.pool.stats().bytes_in_use == before


def test_stack(rng: np.random.Generator) -> None:
    parts = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(3)]
    for axis in (0, 1, -1):
        same(ops.stack([from_numpy(p) for p in parts], axis), np.stack(parts, axis))
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(3, 2\) differ"):
        ops.stack([from_numpy(parts[0]), from_numpy(parts[1].T)])


def test_view_records(tape: RecordLog) -> None:
    t = tensor(np.ones((2, 3, 4)), requires_grad=True)
    makers: list[Callable[[], Tensor]] = [
        lambda: t.reshape(6, 4),
        lambda: t.view(-1),
        lambda: t.flatten(1),
        lambda: ops.squeeze(t[:, :1], 1),
        lambda: ops.unsqueeze(t, 0),
    ]
    for make in makers:
        out = make()
        call = tape.calls[-1]
        assert call.op == "reshape" and call.output is out
        assert call.saved["input_shape"] == call.inputs[0].shape
    t.transpose(0, -1)
    assert tape.calls[-1].op == "permute" and tape.calls[-1].saved == {"dims": (2, 1, 0)}
    t[:, :1].expand(5, 2, 3, 4)
    assert tape.calls[-1].op == "expand" and tape.calls[-1].saved["input_shape"] == (2, 1, 4)


def test_getitem_records_an_index_that_reapplies(tape: RecordLog) -> None:
    t = tensor(X, requires_grad=True)
    for index in INDICES:
        out = t[index]
        call = tape.calls[-1]
        assert call.op == "getitem" and call.output is out and call.saved["input_shape"] == X.shape
        recorded = call.saved["index"]
        assert len([e for e in recorded if e is not None]) == X.ndim
        same(t.detach()[recorded], X[index])


def test_cat_and_stack_record(tape: RecordLog) -> None:
    a = tensor(np.ones((2, 3)), requires_grad=True)
    b = tensor(np.ones((2, 1)))
    out = ops.cat([a, b], -1)
    call = tape.calls[-1]
    assert (call.op, call.output, call.inputs) == ("cat", out, [a, b])
    assert call.saved == {"axis": 1, "sizes": (3, 1)}
    ops.stack([a, a], 1)
    assert tape.ops[-3:] == ["reshape", "reshape", "cat"]
    assert tape.calls[-1].saved == {"axis": 1, "sizes": (1, 1)}
