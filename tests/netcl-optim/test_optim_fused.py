"""The fused path: one launch per param group and dtype over a flat layout.

Every optimizer configuration of optim_cases is run twice, fused (the default)
and per-parameter (``fused=False``, the reference), from the same parameters
and gradients; the two must be bit-identical (the same kernel on the same
values, element by element; only the launch ranges differ). Then what the flat
layout promises: one launch a bucket, 8 bytes of Adam state a parameter, no
allocation in a step after the first, parameters that stay the same objects,
and state dicts and errors that behave as on the per-parameter path.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyopencl as cl
import pytest
from optim_cases import CASES, CLASSES, UNFUSED, Case, gradients, initial_params, split

import netcl.optim as no
from netcl.core.device import manager
from netcl.core.tensor import Parameter, Tensor, from_buffer, from_numpy
from netcl.optim.functional import kernels

# The algorithm modules (the package's names adam, sgd, rmsprop are their functions).
FAMILIES = [
    importlib.import_module(f"netcl.optim.functional.{name}")
    for name in ("adam", "sgd", "rmsprop", "elementwise")
]

ALL = [
    (no.Adam, {}), (no.AdamW, {"weight_decay": 0.1}), (no.SGD, {"lr": 0.1}),
    (no.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (no.RMSProp, {"momentum": 0.5, "centered": True}),
    (no.NAdam, {"weight_decay": 0.1}), (no.RAdam, {"decoupled_weight_decay": True}),
    (no.Adamax, {}), (no.Adagrad, {"initial_accumulator_value": 0.5}), (no.Lion, {}),
]
IDS = [f"{cls.__name__}{'-momentum' * (cls is no.SGD and 'momentum' in kw)}" for cls, kw in ALL]


def build(case: Case, fused: bool | None) -> tuple[list[Tensor], no.Optimizer]:
    params: list[Tensor] = [
        Parameter(from_numpy(v)) for v in initial_params(case)
    ]
    return params, CLASSES[case.algorithm](split(params, case), **case.kwargs, fused=fused)


def assign(params: list[Tensor], grads: list[np.ndarray[Any, Any] | None]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else from_numpy(g, p.device)


@pytest.mark.parametrize("case", [c for c in CASES if c.algorithm not in UNFUSED],
                         ids=lambda case: case.id)
def test_fused_matches_per_parameter(case: Case) -> None:
    fused_params, fused = build(case, None)
    loose_params, loose = build(case, False)
    assert fused.flat_layout.buckets and not loose.flat_layout.buckets
    grads_a, grads_b = gradients(case), gradients(case)
    for step in range(1, 31):
        assign(fused_params, next(grads_a))
        assign(loose_params, next(grads_b))
        fused.step()
        loose.step()
        if step in (1, 5, 30):
            for a, b in zip(fused_params, loose_params, strict=True):
                # Same kernel, same values, element by element: bit-identical.
                np.testing.assert_array_equal(a.numpy(), b.numpy(), f"{case.id}, step {step}")
    a_state, b_state = fused.state_dict()["state"], loose.state_dict()["state"]
    assert a_state.keys() == b_state.keys()
    for index, entry in a_state.items():
        for key, value in entry.items():
            np.testing.assert_array_equal(value, b_state[index][key])


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts every optimizer kernel launch (each algorithm module's ``launch_step``), by
    the elements it covers."""
    counted: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> None:
        counted.append(args[3][0].count)  # the parameter operand's elements
        kernels.launch_step(*args, **kwargs)

    for module in FAMILIES:
        monkeypatch.setattr(module, "launch_step", counting)
    yield counted


def small_params(dtype: str = "float32") -> list[Tensor]:
    rng = np.random.default_rng(0)
    shapes = [(5, 3), (7,), (), (4, 4, 2), (1000,)]
    return [Parameter(from_numpy(rng.standard_normal(s).astype(dtype))) for s in shapes]


def fill_grads(params: list[Tensor], value: float = 0.25) -> None:
    for p in params:
        p.grad = from_numpy(np.full(p.shape, value, dtype=p.dtype), p.device)


@pytest.mark.parametrize(("cls", "kwargs"), ALL, ids=IDS)
def test_one_launch_per_bucket_and_one_per_parameter_unfused(
    cls: type[no.Optimizer], kwargs: dict[str, Any], launches: list[int]
) -> None:
    params = small_params()
    total = sum(p.size for p in params)
    optimizer = cls(params, **kwargs)
    fill_grads(params)
    optimizer.step()
    optimizer.step()
    assert launches == [total, total]
    launches.clear()
    reference = small_params()
    unfused = cls(reference, **kwargs, fused=False)
    fill_grads(reference)
    unfused.step()
    assert launches == [p.size for p in reference]


def test_groups_and_dtypes_get_a_bucket_each(launches: list[int]) -> None:
    halves, floats = small_params("float16"), small_params()
    optimizer = no.Adam([{"params": halves + floats[:2]}, {"params": floats[2:], "lr": 0.1}])
    assert len(optimizer.flat_layout.buckets) == 3
    fill_grads(halves + floats)
    optimizer.step()
    assert sorted(launches) == sorted([
        sum(p.size for p in halves), sum(p.size for p in floats[:2]),
        sum(p.size for p in floats[2:]),
    ])


def test_a_late_gradient_splits_the_launch_until_step_counts_agree(launches: list[int]) -> None:
    params = small_params()
    optimizer = no.Adam(params)
    fill_grads(params)
    params[2].grad = None  # the middle parameter has no grad yet
    optimizer.step()
    assert launches == [15 + 7, 32 + 1000]
    launches.clear()
    fill_grads(params)
    optimizer.step()  # the late one is at step 1, its neighbours at step 2
    assert len(launches) == 3 and sum(launches) == sum(p.size for p in params)


def test_parameters_stay_the_same_objects_with_their_values_in_one_buffer() -> None:
    params = small_params()
    before = [p.numpy() for p in params]
    ids = [id(p) for p in params]
    optimizer = no.SGD(params, lr=0.1)
    (bucket,) = optimizer.flat_layout.buckets
    assert [id(p) for p in bucket.params] == ids
    for p, values in zip(params, before, strict=True):
        assert p.buffer is bucket.param_flat.buffer and p.is_contiguous
        np.testing.assert_array_equal(p.numpy(), values)
    np.testing.assert_array_equal(
        bucket.param_flat.numpy(), np.concatenate([v.reshape(-1) for v in before])
    )
    fill_grads(params)
    optimizer.step()
    for p, values in zip(params, before, strict=True):
        np.testing.assert_allclose(p.numpy(), values - 0.025, rtol=1e-6)


def test_adam_keeps_exactly_8_bytes_of_state_per_parameter() -> None:
    device = manager.default("auto")
    # 2**16 floats in all: a power-of-two size the pool hands out without rounding.
    params = [Parameter(from_numpy(np.ones(n, np.float32))) for n in (32768, 16384, 8192, 8192)]
    optimizer = no.Adam(params)
    fill_grads(params)
    device.synchronize()
    in_use = device.pool.stats().bytes_in_use
    optimizer.step()
    assert device.pool.stats().bytes_in_use - in_use == 8 * 2**16
    (bucket,) = optimizer.flat_layout.buckets
    assert sorted(bucket.state_flats) == ["exp_avg", "exp_avg_sq"]
    assert all(flat.nbytes == 4 * 2**16 for flat in bucket.state_flats.values())
    for p in params:
        assert optimizer.state[p]["exp_avg"].buffer is bucket.state_flats["exp_avg"].buffer


@pytest.mark.parametrize(("cls", "kwargs"), ALL, ids=IDS)
def test_no_allocation_in_a_step_after_the_first(
    cls: type[no.Optimizer], kwargs: dict[str, Any]
) -> None:
    device = manager.default("auto")
    params = small_params()
    optimizer = cls(params, **kwargs)
    fill_grads(params)
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)
    fill_grads(params)
    before = device.pool.stats()
    for _ in range(3):
        optimizer.step()
    after = device.pool.stats()
    assert (after.allocations, after.hits, after.bytes_in_use) == (
        before.allocations, before.hits, before.bytes_in_use
    )


def test_assigned_grads_land_in_the_flat_grad_buffer_and_zero_grad_keeps_them_there() -> None:
    params = small_params()
    optimizer = no.Momentum(params, lr=0.1)
    (bucket,) = optimizer.flat_layout.buckets
    fill_grads(params, 2.0)
    for p, home in zip(params, bucket.grad_homes, strict=True):
        assert p.grad is home
    np.testing.assert_array_equal(bucket.grad_flat.numpy(), 2.0)
    optimizer.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(bucket.grad_flat.numpy(), 0.0)
    assert all(p.grad is home for p, home in zip(params, bucket.grad_homes, strict=True))
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)
    fill_grads(params, 3.0)
    assert all(p.grad is home for p, home in zip(params, bucket.grad_homes, strict=True))


def test_a_grad_stored_elsewhere_is_stepped_on_its_own(launches: list[int]) -> None:
    params = small_params()
    optimizer = no.SGD(params, lr=1.0)
    fill_grads(params)
    elsewhere = from_numpy(np.full(7, 0.5, np.float32))
    params[1]._grad = elsewhere  # as a framework writing around the setter would
    before = params[1].numpy()
    optimizer.step()
    assert len(launches) == 3  # params 0, 2-4 in two runs around the loose one
    np.testing.assert_allclose(params[1].numpy(), before - 0.5)


def test_fused_true_refuses_memory_netcl_does_not_own() -> None:
    device = manager.default("auto")
    raw = cl.Buffer(device.context, cl.mem_flags.READ_WRITE, 16)
    foreign = Parameter(from_buffer(raw, (4,), np.float32, device))
    mine = small_params()
    with pytest.raises(ValueError, match=r"parameter 5 of param group 0.*fused=None"):
        no.Adam([*mine, foreign], fused=True)
    assert mine[0].buffer is not mine[1].buffer  # nothing was moved
    optimizer = no.Adam([*mine, foreign])  # auto: the foreign one steps on its own
    assert foreign.buffer is raw and optimizer.flat_layout.placement(foreign) is None
    assert all(optimizer.flat_layout.placement(p) for p in mine)


def test_fused_must_be_a_bool_or_none() -> None:
    with pytest.raises(ValueError, match="invalid fused: 'yes'"):
        no.Adam(small_params(), fused="yes")  # type: ignore[arg-type]


def test_a_bad_grad_leaves_the_fused_optimizer_as_it_was() -> None:
    params = small_params()
    optimizer = no.Adam(params)
    fill_grads(params)
    optimizer.step()
    values = [p.numpy() for p in params]
    state = optimizer.state_dict()
    params[3].grad = from_numpy(np.zeros(5, np.float32))  # wrong shape
    with pytest.raises(ValueError, match=r"shape \(4, 4, 2\).*grad of shape \(5,\)"):
        optimizer.step()
    for p, v in zip(params, values, strict=True):
        np.testing.assert_array_equal(p.numpy(), v)
    after = optimizer.state_dict()
    for index, entry in state["state"].items():
        assert after["state"][index]["step"] == entry["step"]
        np.testing.assert_array_equal(after["state"][index]["exp_avg"], entry["exp_avg"])


@pytest.mark.parametrize(("source", "target"), [(None, False), (False, None), (None, None)])
def test_state_dicts_move_between_fused_and_per_parameter(
    source: bool | None, target: bool | None
) -> None:
    a_params, b_params = small_params(), small_params()
    a = no.Adam(a_params, lr=0.01, amsgrad=True, fused=source)
    b = no.Adam(b_params, lr=0.01, amsgrad=True, fused=target)
    for _ in range(3):
        fill_grads(a_params, 0.3)
        a.step()
    fill_grads(b_params)
    b.step()  # b has live state that the load must fill
    held = b.state[b_params[0]]["exp_avg"]
    b.load_state_dict(a.state_dict())
    if target is None:  # the flat layout fills the views it handed out
        assert b.state[b_params[0]]["exp_avg"] is held
    loaded = b.state_dict()["state"]
    for index, entry in a.state_dict()["state"].items():
        assert loaded[index]["step"] == entry["step"] == 3.0
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            np.testing.assert_array_equal(loaded[index][key], entry[key])
    # Both continue identically from the loaded state (b's params differ: copy a's in).
    for p, q in zip(a_params, b_params, strict=True):
        q.copy_(p)
    fill_grads(a_params, -0.2)
    fill_grads(b_params, -0.2)
    a.step()
    b.step()
    for p, q in zip(a_params, b_params, strict=True):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-6, atol=0)


def test_load_state_dict_without_state_for_a_param_zeroes_its_view() -> None:
    params = small_params()
    optimizer = no.Adam(params)
    fill_grads(params)
    optimizer.step()
    saved = optimizer.state_dict()
    del saved["state"][0]
    optimizer.load_state_dict(saved)
    assert params[0] not in optimizer.state
    (bucket,) = optimizer.flat_layout.buckets
    np.testing.assert_array_equal(bucket.state_flats["exp_avg"].numpy()[:15], 0.0)
    assert np.all(bucket.state_flats["exp_avg"].numpy()[15:] != 0.0)


@pytest.mark.parametrize("layout", [kernels.Layout(1, 1), kernels.Layout(4, 4),
                                    kernels.Layout(8, 4096)], ids=str)
def test_every_layout_gives_the_same_fused_step(
    layout: kernels.Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected_params = small_params()
    expected = no.RMSProp(expected_params, momentum=0.9, centered=True, fused=False)
    fill_grads(expected_params)
    expected.step()
    monkeypatch.setitem(kernels.layout_override, manager.default("auto").type, layout)
    params = small_params()
    optimizer = no.RMSProp(params, momentum=0.9, centered=True)
    fill_grads(params)
    optimizer.step()
    for p, q in zip(params, expected_params, strict=True):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6, atol=1e-7)


def test_fresh_state_in_a_bucket_starts_from_zero_after_state_is_cleared() -> None:
    runs = []
    for fused in (None, False):
        params = small_params()
        optimizer = no.Adam(params, lr=0.1, fused=fused)
        for _ in range(3):
            fill_grads(params)
            optimizer.step()
        optimizer.state.clear()  # the flat state still holds the old moments
        fill_grads(params, -0.5)
        optimizer.step()
        runs.append([p.numpy() for p in params])
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_group_added_again_keeps_its_state() -> None:
    runs = []
    for fused in (None, False):
        params = small_params()
        optimizer = no.Adam(params[:2], lr=0.1, fused=fused)
        optimizer.add_param_group({"params": params[2:]})
        for _ in range(2):
            fill_grads(params)
            optimizer.step()
        optimizer.add_param_group(optimizer.param_groups.pop())
        fill_grads(params, -0.5)
        optimizer.step()
        runs.append(([p.numpy() for p in params], optimizer.state_dict()["state"]))
    (a_params, a_state), (b_params, b_state) = runs
    for a, b in zip(a_params, b_params, strict=True):
        np.testing.assert_array_equal(a, b)
    for index, entry in a_state.items():
        np.testing.assert_array_equal(entry["exp_avg"], b_state[index]["exp_avg"])


def test_a_second_optimizer_over_the_same_params_keeps_the_first_one_fused(
    launches: list[int],
) -> None:
    params = small_params()
    first = no.Adam(params, lr=0.1)
    second = no.SGD(params, lr=0.1, allow_shared=True)
    (first_bucket,), (second_bucket,) = first.flat_layout.buckets, second.flat_layout.buckets
    assert second_bucket.param_flat.buffer is first_bucket.param_flat.buffer
    fill_grads(params)
    first.step()
    second.step()
    assert launches == [sum(p.size for p in params)] * 2


def test_a_grad_in_another_context_is_refused_before_any_group_steps() -> None:
    params = small_params()
    optimizer = no.Adam([{"params": params[:2]}, {"params": params[2:]}])
    device = params[0].device
    other = manager.for_queue(cl.CommandQueue(cl.Context([device.cl_device])))
    fill_grads(params)
    params[4].grad = from_numpy(np.ones(1000, np.float32), other)
    before = [p.numpy() for p in params]
    with pytest.raises(ValueError, match="grad in another OpenCL context"):
        optimizer.step()
    for p, values in zip(params, before, strict=True):
        np.testing.assert_array_equal(p.numpy(), values)
    assert optimizer.state == {}


@pytest.mark.parametrize("fused", [None, False])
def test_a_scalar_parameter_state_survives_two_loads(fused: bool | None) -> None:
    params = small_params()
    optimizer = no.Adam(params, fused=fused)
    fill_grads(params)
    optimizer.step()
    optimizer.load_state_dict(optimizer.state_dict())
    optimizer.load_state_dict(optimizer.state_dict())
    assert optimizer.state[params[2]]["exp_avg"].shape == ()


def test_memory_over_an_unaligned_host_pointer_is_not_read_as_whole_vectors() -> None:
    device = manager.default("auto")
    host = np.zeros(4097, np.float32)[1:]  # 4-byte aligned only
    flags = cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR
    p = Parameter(from_buffer(cl.Buffer(device.context, flags, hostbuf=host), (4096,),
                              np.float32, device))
    p.grad = from_numpy(np.ones(4096, np.float32), device)
    optimizer = no.Adam([p], lr=0.1)
    optimizer.step()
    np.testing.assert_allclose(p.numpy(), -0.1, rtol=1e-6)


def test_a_layout_chunk_must_be_whole_vectors() -> None:
    with pytest.raises(ValueError, match="chunk must be a positive multiple of vec"):
        kernels.Layout(4, 6)


def test_a_bucket_exposes_its_ranges_and_element_views_over_any_shard() -> None:
    params = small_params()
    optimizer = no.Adam(params, lr=0.1)
    fill_grads(params)
    optimizer.step()
    (bucket,) = optimizer.flat_layout.buckets
    assert bucket.sizes == [p.size for p in params]
    assert bucket.starts == list(np.cumsum([0, *bucket.sizes[:-1]]))
    assert bucket.total == sum(bucket.sizes)
    for i, p in enumerate(params):
        assert optimizer.flat_layout.placement(p) == (bucket, i)
    # A shard that cuts through parameters: its views alias the bucket's buffers there.
    first, stop = 7, bucket.total - 500
    shard = bucket.element_views(first, stop, ["exp_avg"])
    flat_param, flat_avg = bucket.param_flat.numpy(), bucket.state_flat("exp_avg").numpy()
    np.testing.assert_array_equal(shard.param.numpy(), flat_param[first:stop])
    np.testing.assert_array_equal(shard.state["exp_avg"].numpy(), flat_avg[first:stop])
    shard.grad.fill_(-1.0)
    grads = bucket.grad_flat.numpy()
    assert np.all(grads[first:stop] == -1.0) and np.all(grads[:first] == 0.25)
    assert np.all(grads[stop:] == 0.25)
    with pytest.raises(ValueError, match=r"\[5, 3\) is not a range of a bucket"):
        bucket.element_views(5, 3, [])
