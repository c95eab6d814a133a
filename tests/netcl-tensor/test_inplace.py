"""In-place ops compute what numpy computes, even when the output overlaps an input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcl.core.tensor import Tensor, arange, from_numpy, tensor, zeros

Array = np.ndarray[Any, Any]

IN_PLACE: dict[str, tuple[Callable[[Tensor, Tensor], Any], Callable[[Array, Array], Any]]] = {
    # np.copyto does not guard every overlap (base[4::-2] from base[2::-1] reads an element it
    # already wrote), so the reference copies the source first: the no-overlap semantics.
    "copy_": (lambda t, s: t.copy_(s), lambda t, s: np.copyto(t, s.copy())),
    "add_": (lambda t, s: t.add_(s), lambda t, s: np.add(t, s, out=t)),
    "add_alpha": (lambda t, s: t.add_(s, alpha=-2), lambda t, s: np.add(t, -2 * s, out=t)),
    "mul_": (lambda t, s: t.mul_(s), lambda t, s: np.multiply(t, s, out=t)),
}


def test_the_issues_repros_match_numpy() -> None:
    y = arange(10.0)
    y[1:].copy_(y[:-1])
    assert y.tolist() == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    x = arange(10.0)
    x.add_(x[::-1])
    assert x.tolist() == [9.0] * 10
    square = from_numpy(np.arange(16, dtype=np.float32).reshape(4, 4))
    square.add_(square.T)
    want = np.arange(16, dtype=np.float32).reshape(4, 4)
    want += want.T  # numpy makes the overlapping operand a temporary
    assert np.array_equal(square.numpy(), want)
    rows = from_numpy(np.arange(12, dtype=np.float32).reshape(3, 4))
    rows.mul_(rows[0])  # row 0 is read by every row while being written
    assert np.array_equal(rows.numpy(), np.arange(12).reshape(3, 4) * np.arange(4))


@settings(max_examples=40, deadline=None)
@given(
    op=st.sampled_from(sorted(IN_PLACE)),
    n=st.integers(1, 12),
    start=st.tuples(st.integers(0, 24), st.integers(0, 24)),
    step=st.tuples(st.sampled_from([1, 2, -1, -2]), st.sampled_from([1, 2, -1, -2])),
)
def test_any_two_views_of_one_buffer_match_numpy(
    op: str, n: int, start: tuple[int, int], step: tuple[int, int]
) -> None:
    """Target and source: n-element slices of one buffer, anywhere, either direction."""
    base_np = np.arange(1, 50, dtype=np.float32)
    base = from_numpy(base_np)

    def view(i: int) -> slice:
        first = start[i] if step[i] > 0 else start[i] + (n - 1) * -step[i]
        stop = first + n * step[i]
        return slice(first, None if stop < 0 else stop, step[i])

    ours, reference = IN_PLACE[op]
    ours(base[view(0)], base[view(1)])
    reference(base_np[view(0)], base_np[view(1)])
    np.testing.assert_array_equal(base.numpy(), base_np)


def test_writing_a_view_into_itself_is_not_copied_and_stays_right() -> None:
    x = from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    x.T.add_(x.T)  # the same elements, read and written by the same work-item
    assert x.numpy().tolist() == [[0, 2, 4], [6, 8, 10]]


@pytest.mark.parametrize(
    "update",
    [lambda t: t.mul_(1.5), lambda t: t.add_(0.5), lambda t: t.fill_(2.9),
     lambda t: t.add_(1, alpha=0.5), lambda t: t.add_(tensor([1.0, 2.0, 3.0]))],
    ids=["mul_", "add_", "fill_", "alpha", "float_tensor"],
)
def test_a_float_result_into_an_int_tensor_raises_like_numpy(
    update: Callable[[Tensor], Any],
) -> None:
    target = tensor(np.array([1, 2, 3], np.int32))
    with pytest.raises(TypeError, match=r"float32.*int32 tensor cannot hold"):
        update(target)
    assert target.tolist() == [1, 2, 3]
    with pytest.raises(TypeError):  # numpy refuses the same: same_kind casting
        np.add(np.array([1, 2, 3], np.int32), 0.5, out=np.array([1, 2, 3], np.int32))


def test_same_kind_in_place_updates_and_explicit_casts_still_work() -> None:
    target = tensor(np.array([1, 2, 3], np.int32))
    target.add_(2)
    target.mul_(tensor(np.array([1, 2, 3], np.int64)))  # int64 into int32: same kind
    assert target.tolist() == [3, 8, 15]
    target.copy_(tensor([1.9, -1.9, 0.0]))  # copy_ is the explicit cast: truncates
    assert target.tolist() == [1, -1, 0]
    flags = tensor(np.array([True, False]))
    with pytest.raises(TypeError, match=r"int64.*bool tensor"):
        flags.add_(1)


def test_an_expanded_target_is_refused() -> None:
    base = zeros((3,))
    with pytest.raises(ValueError, match=r"strides \(0, 1\).*one memory location"):
        base.expand(2, 3).add_(tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    assert base.tolist() == [0.0, 0.0, 0.0]
