"""Adam8bit / AdamW8bit: each step against a float32 host reference of the same algorithm
(dequantise, Adam's update, requantise), the bytes its state holds, state dicts, the
GradScaler's one-launch path, and its refusals. Convergence against float32-state Adam
is tests/netcl/test_adam8bit_training.py's."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
from optim_cases import KernelNames

from netcl.amp import GradScaler
from netcl.core.tensor import Parameter, bfloat16, from_numpy, uint8
from netcl.core.tensor.launch import observing
from netcl.optim import Adam, Adam8bit, AdamW8bit
from netcl.optim.functional.adam8bit import (
    BLOCK,
    code_lookup,
    dequantize,
    dynamic_code,
    quantize,
)

# The module (the package exports a function of the same name).
adam8bit = importlib.import_module("netcl.optim.functional.adam8bit")

# A scalar, a tail block of one element, shorter than a block, several blocks with a
# short last one, and a matrix: blocks restart at every parameter.
SHAPES = [(), (BLOCK + 1,), (17,), (3, 200), (64, 40)]
CASES = [
    {"lr": 1e-2},
    {"lr": 1e-2, "weight_decay": 0.1, "maximize": True},
    {"lr": 3e-3, "betas": (0.5, 0.9), "eps": 1e-6, "weight_decay": 0.5, "decoupled": True},
]


def _params(seed: int = 0, dtype: Any = np.float32) -> list[Parameter]:
    rng = np.random.default_rng(seed)
    return [Parameter(from_numpy(rng.standard_normal(s).astype(dtype))) for s in SHAPES]


def _grads(rng: np.random.Generator, dtype: Any = np.float32) -> list[np.ndarray[Any, Any]]:
    # Each parameter's gradients span a few decades, as a layer's do.
    return [(rng.standard_normal(s) * 10.0 ** rng.uniform(-4, 0, s)).astype(dtype)
            for s in SHAPES]


def _optimizer(params: list[Parameter], decoupled: bool = False, **kwargs: Any) -> Adam8bit:
    return (AdamW8bit if decoupled else Adam8bit)(params, **kwargs)


def _lerp(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], w: np.float32) -> Any:
    return a + w * (b - a) if w < 0.5 else b - (b - a) * (np.float32(1) - w)


def reference_step(p: np.ndarray[Any, Any], g: np.ndarray[Any, Any], state: dict[str, Any],
                   t: int, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8, weight_decay: float = 0.0, maximize: bool = False,
                   decoupled: bool = False) -> tuple[Any, Any, Any]:
    """One step in float32 on the host, from the 8-bit state the kernel left: (p, m, v)."""
    f = np.float32
    beta1, beta2 = betas
    m = dequantize(state["state1"], state["absmax1"], signed=True)
    v = dequantize(state["state2"], state["absmax2"], signed=False)
    g = -g if maximize else g.copy()
    if decoupled:
        p = p * f(1.0 - lr * weight_decay)
    elif weight_decay:
        g = g + f(weight_decay) * p
    m = _lerp(m, g, f(1.0 - beta1))
    v = v * f(beta2) + f(1.0 - beta2) * g * g
    step_size = f(-(lr / (1.0 - beta1**t)))
    denom = np.sqrt(v) / f((1.0 - beta2**t) ** 0.5) + f(eps)
    return p + (step_size * m) / denom, m, v


def _nearest(codes: np.ndarray[Any, Any], absmax: np.ndarray[Any, Any],
             values: np.ndarray[Any, Any], signed: bool) -> None:
    """``codes`` hold each value's nearest code, up to float32 rounding of the value."""
    code = dynamic_code(signed)
    inverse = np.divide(np.float32(1), absmax, out=np.zeros_like(absmax), where=absmax > 0)
    normed = values * np.repeat(inverse, BLOCK)[:values.size].reshape(values.shape)
    best = np.abs(code[quantize(values, signed)[0]] - normed)
    # A value within a few ulps of the midpoint of two codes may round either way.
    slack = 8 * np.spacing(np.float32(1.0))
    assert np.all(np.abs(code[codes] - normed) <= best + slack)


@pytest.fixture(params=[("work-group", 2), ("work-group", 1), ("work-group", 4),
                        ("work-item", 1)], ids=lambda form: f"{form[0]}-{form[1]}")
def kernel_form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both kernel forms whatever the device: a block by a work-group (a GPU's) with its
    default elements a work-item (2), and with 1 and 4; a block by one work-item (a CPU's).
    (Reading ahead, PREFETCH, is checked bit for bit against the first.)"""
    stepper, per_item = request.param
    monkeypatch.setattr(adam8bit, "BLOCK_STEPPER", stepper)
    monkeypatch.setattr(adam8bit, "PER_ITEM", per_item)


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(map(str, k)))
@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.usefixtures("kernel_form")
def test_each_step_is_adams_update_of_the_dequantised_state(kwargs: dict[str, Any],
                                                            fused: bool | None) -> None:
    params = _params()
    optimizer = _optimizer(params, fused=fused, **kwargs)
    rng = np.random.default_rng(1)
    for t in range(1, 9):
        grads = _grads(rng)
        before = [(p.numpy(), {k: v for k, v in optimizer.state_dict()["state"].get(
            i, {}).items() if k != "step"}) for i, p in enumerate(params)]
        for p, g in zip(params, grads, strict=True):
            p.grad = from_numpy(g)
        optimizer.step()
        after = optimizer.state_dict()["state"]
        for i, ((p0, state), g) in enumerate(zip(before, grads, strict=True)):
            if not state:  # the first step starts from zero state
                scales = np.zeros(-(-p0.size // BLOCK), np.float32)
                state = {"state1": np.zeros(p0.shape, np.uint8), "absmax1": scales,
                         "state2": np.zeros(p0.shape, np.uint8), "absmax2": scales}
            p, m, v = reference_step(p0, g, state, t, **kwargs)
            # The same float32 operations in the same order; a compiler may fuse a
            # multiply-add (one rounding fewer), which moves the update by a few of its
            # ulps and p by at most one rounding more: 4 ulps of |p| covers both.
            np.testing.assert_allclose(params[i].numpy(), p, rtol=0,
                                       atol=4 * float(np.spacing(np.abs(p).max())),
                                       err_msg=f"step {t}, param {i} of shape {SHAPES[i]}")
            new = after[i]
            assert new["step"] == t
            for name, value, signed in (("1", m, True), ("2", v, False)):
                scale = quantize(value, signed)[1]
                np.testing.assert_allclose(new["absmax" + name], scale, rtol=1e-6)
                _nearest(new["state" + name], new["absmax" + name], value, signed)


def _probes(signed: bool) -> np.ndarray[Any, Any]:
    """Every value of the code, every midpoint of two neighbours and every run edge of its
    lookup, each also one and two float32 steps either side: where a wrong run, decade
    or step shows."""
    code = dynamic_code(signed).astype(np.float64)
    points = np.concatenate([code, (code[1:] + code[:-1]) / 2, code_lookup(signed)[:8]])
    points = points.astype(np.float32)
    near = [points]
    for direction in (-1.0, 1.0):
        step = points
        for _ in range(2):
            step = np.nextafter(step, np.float32(direction))
            near.append(step)
    probes = np.concatenate(near)
    return probes[(np.abs(probes) <= 1) & ((probes >= 0) | signed)]


@pytest.mark.usefixtures("kernel_form")
def test_each_moment_gets_its_nearest_code_at_every_edge_of_the_code() -> None:
    """With both betas 0 the first step's moments are the gradient and its square, so a
    gradient of probes (blocks holding a 1, so absmax is 1 and the moments are quantised
    as they are) checks the lookup at every boundary: no code nearer than the chosen one,
    beyond the rounding of the step the kernel finds."""
    for signed in (True, False):
        probes = _probes(signed)
        # v = g * g: take square roots for v's probes (rounding moves each by an ulp or so).
        g = probes if signed else np.sqrt(probes).astype(np.float32)
        body = np.zeros(-(-g.size // (BLOCK - 1)) * (BLOCK - 1), np.float32)
        body[:g.size] = g
        grad = np.concatenate([np.ones((body.size // (BLOCK - 1), 1), np.float32),
                               body.reshape(-1, BLOCK - 1)], axis=1)
        p = Parameter(from_numpy(np.zeros(grad.size, np.float32)))
        p.grad = from_numpy(grad.reshape(-1))
        optimizer = Adam8bit([p], lr=1e-3, betas=(0.0, 0.0))
        optimizer.step()
        state = optimizer.state_dict()["state"][0]
        name, moment = ("1", grad) if signed else ("2", grad * grad)
        np.testing.assert_array_equal(state["absmax" + name], 1.0)
        code = dynamic_code(signed).astype(np.float64)
        x = moment.reshape(-1).astype(np.float64)
        best = np.abs(code[None, :] - x[:, None]).min(axis=1)
        chosen = np.abs(code[state["state" + name].astype(np.intp)] - x)
        # The kernel moves from step j - 1 to j at E = start + j / reciprocal, found as
        # u = (|x| - start) * reciprocal: start is a float32, and the difference, the
        # reciprocal and the product each round, every one by at most 2^-24 of its value,
        # which moves that edge by at most 2^-24 * (start + 3 * (E - start)) < 3 * 2^-24 * E.
        # The nearest code changes at the midpoint of two float32 codes, each rounded
        # from its exact value: at most 2^-24 * E from E. A value within 4 * 2^-24 * |x|
        # of a midpoint may so take either neighbour, whose distances differ by at most
        # twice that. (A run edge, one rounding, is off by at most 2^-24 of it.)
        slack = 8 * 2.0**-24 * np.abs(x)
        assert np.all(chosen <= best + slack), x[chosen > best + slack][:5]


def _ten_steps(fused: bool | None) -> tuple[list[np.ndarray[Any, Any]], dict[int, Any]]:
    """The parameters and state after ten steps from the same start and gradients."""
    params = _params()
    optimizer = Adam8bit(params, lr=1e-2, weight_decay=0.01, fused=fused)
    rng = np.random.default_rng(2)
    for _ in range(10):
        for p, g in zip(params, _grads(rng), strict=True):
            p.grad = from_numpy(g)
        optimizer.step()
    return [p.numpy() for p in params], optimizer.state_dict()["state"]


def _assert_bit_identical(a: tuple[list[np.ndarray[Any, Any]], dict[int, Any]],
                          b: tuple[list[np.ndarray[Any, Any]], dict[int, Any]]) -> None:
    (p_a, s_a), (p_b, s_b) = a, b
    for i in range(len(SHAPES)):
        np.testing.assert_array_equal(p_a[i], p_b[i])
        for name in ("state1", "state2", "absmax1", "absmax2"):
            np.testing.assert_array_equal(s_a[i][name], s_b[i][name])


def test_fused_and_per_parameter_steps_are_bit_identical() -> None:
    """Blocks never span two parameters, so a bucket's one launch is each parameter's."""
    assert len(Adam8bit(_params(), fused=None).flat_layout.buckets) == 1
    _assert_bit_identical(_ten_steps(None), _ten_steps(False))


def test_reading_each_block_ahead_changes_no_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """PREFETCH moves a block's reads, not its arithmetic. The bucket's 17 blocks at 2 a
    group: groups 0-7 step blocks g and g + 9, reading the second while stepping the first;
    group 8 steps block 8 alone, with nothing to read ahead."""
    monkeypatch.setattr(adam8bit, "BLOCK_STEPPER", "work-group")
    monkeypatch.setattr(adam8bit, "BLOCKS_PER_GROUP", 2)
    runs = []
    for prefetch in (False, True):
        monkeypatch.setattr(adam8bit, "PREFETCH", prefetch)
        runs.append(_ten_steps(None))
    _assert_bit_identical(*runs)


def test_one_launch_steps_a_bucket_and_state_is_at_most_2_1_bytes_a_parameter() -> None:
    """The digits MLP's shapes (64-128-10 with biases): the bytes of every state buffer."""
    rng = np.random.default_rng(3)
    shapes = [(128, 64), (128,), (10, 128), (10,)]
    params = [Parameter(from_numpy(rng.standard_normal(s).astype(np.float32))) for s in shapes]
    optimizer, reference = Adam8bit(params, lr=1e-3), Adam(
        [Parameter(from_numpy(p.numpy())) for p in params], lr=1e-3)
    for p, q in zip(params, reference.param_groups[0]["params"], strict=True):
        p.grad = from_numpy(rng.standard_normal(p.shape).astype(np.float32))
        q.grad = from_numpy(p.grad.numpy())
    optimizer.step()  # the first step also makes (and zeroes) the state buffers
    reference.step()
    launches = KernelNames()
    with observing(launches):  # type: ignore[arg-type]
        optimizer.step()
    assert launches.names == ["adam8bit_step"]
    (bucket,) = optimizer.flat_layout.buckets
    count = sum(p.size for p in params)
    state_bytes = sum(flat.size * flat.itemsize for flat in bucket.state_flats.values())
    assert {name: flat.dtype for name, flat in bucket.state_flats.items()} == {
        "state1": uint8, "state2": uint8, "absmax1": np.float32, "absmax2": np.float32}
    # 2 bytes of codes plus 2 float32 scales per block of 256 (39 blocks here).
    assert state_bytes == 2 * count + 2 * 4 * (32 + 1 + 5 + 1)
    assert state_bytes / count <= 2.1
    (adam_bucket,) = reference.flat_layout.buckets
    assert sum(f.size * f.itemsize for f in adam_bucket.state_flats.values()) == 8 * count
    for i, p in enumerate(params):  # each parameter's state is a view of the bucket's
        assert optimizer.state[p]["state1"].buffer is bucket.state_flats["state1"].buffer
        assert optimizer.state[p]["absmax1"].shape == (-(-p.size // BLOCK),)
        assert i in optimizer.state_dict()["state"]


def test_per_parameter_steps_of_many_sizes_upload_nothing_after_the_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A launch of one parameter needs no block table: more distinct sizes than the
    table cache holds (64) once cleared it, and a new table was uploaded every step."""
    rng = np.random.default_rng(5)
    params = [Parameter(from_numpy(rng.standard_normal(n).astype(np.float32)))
              for n in range(1, 71)]
    optimizer = Adam8bit(params, lr=1e-2, fused=False)
    optimizer.step()  # no grads yet: nothing stepped
    for p in params:
        p.grad = from_numpy(rng.standard_normal(p.shape).astype(np.float32))
    optimizer.step()  # the first step: the codes are uploaded
    uploads: list[Any] = []
    upload = adam8bit.from_numpy
    monkeypatch.setattr(adam8bit, "from_numpy",
                        lambda *args: uploads.append(args) or upload(*args))
    launches = KernelNames()
    with observing(launches):  # type: ignore[arg-type]
        optimizer.step()
    assert launches.names == ["adam8bit_step"] * len(params)
    assert uploads == []


@pytest.mark.smoke
def test_a_state_dict_round_trips_and_training_resumes_exactly() -> None:
    rng = np.random.default_rng(4)
    history = [_grads(rng) for _ in range(8)]
    params = _params()
    optimizer = AdamW8bit(params, lr=1e-2)
    for grads in history[:4]:
        for p, g in zip(params, grads, strict=True):
            p.grad = from_numpy(g)
        optimizer.step()
    saved = optimizer.state_dict()
    assert saved["state"][3]["state1"].dtype == np.uint8
    assert saved["state"][3]["absmax2"].shape == (3,)
    resumed_params = [Parameter(from_numpy(p.numpy())) for p in params]
    resumed = AdamW8bit(resumed_params, lr=0.5)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == 1e-2
    for grads in history[4:]:
        for run in (params, resumed_params):
            for p, g in zip(run, grads, strict=True):
                p.grad = from_numpy(g)
        optimizer.step()
        resumed.step()
    for p, q in zip(params, resumed_params, strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_bad_state_dicts_and_amsgrad_are_refused_and_change_nothing() -> None:
    params = _params()
    optimizer = Adam8bit(params, lr=1e-2)
    for p in params:
        p.grad = from_numpy(np.ones(p.shape, np.float32))
    optimizer.step()
    good = optimizer.state_dict()
    wrong_kind = {**good, "state": {**good["state"], 2: {
        **good["state"][2], "state1": good["state"][2]["state1"].astype(np.float32)}}}
    # int64 codes are fine while they fit a byte; 300 does not.
    codes = good["state"][2]["state2"].astype(np.int64)
    codes.flat[0] = 300
    out_of_range = {**good, "state": {**good["state"], 2: {**good["state"][2], "state2": codes}}}
    for bad, message in (
            (wrong_kind, r"dtype float32; expected integer \(uint8\)"),
            (out_of_range,
             r"'state2'\] holds values in \[\d+, 300\]; expected \[0, 255\] \(uint8\)")):
        with pytest.raises(ValueError, match=message):
            optimizer.load_state_dict(bad)
    adam = Adam(_params(), lr=1e-2)
    for p in adam.param_groups[0]["params"]:
        p.grad = from_numpy(np.ones(p.shape, np.float32))
    adam.step()
    with pytest.raises(ValueError, match=r"missing .*state1"):
        optimizer.load_state_dict(adam.state_dict())
    after = optimizer.state_dict()
    for i, entry in good["state"].items():
        for name, value in entry.items():
            np.testing.assert_array_equal(after["state"][i][name], value)
    with pytest.raises(ValueError, match=r"amsgrad.*8-bit Adam keeps no running maximum"):
        Adam8bit(_params(), amsgrad=True)


def test_a_grad_scaler_steps_it_in_one_launch_and_an_overflow_changes_nothing() -> None:
    plain, scaled = _params(), _params()
    ours, theirs = Adam8bit(plain, lr=1e-2), Adam8bit(scaled, lr=1e-2)
    scaler = GradScaler(init_scale=2.0**8, growth_interval=1000)
    rng = np.random.default_rng(5)
    for _ in range(3):
        grads = _grads(rng)
        for p, q, g in zip(plain, scaled, grads, strict=True):
            p.grad = from_numpy(g)
            q.grad = from_numpy(g * np.float32(2.0**8))  # a power of two: exact
        ours.step()
        scaler.step(theirs)
        scaler.update()
    for p, q in zip(plain, scaled, strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    before = theirs.state_dict()["state"]
    values = [q.numpy() for q in scaled]
    for q in scaled:
        q.grad = from_numpy(np.full(q.shape, np.inf, np.float32))
    scaler.step(theirs)
    scaler.update()
    after = theirs.state_dict()["state"]
    for i, q in enumerate(scaled):
        np.testing.assert_array_equal(q.numpy(), values[i])
        for name in ("state1", "state2", "absmax1", "absmax2"):
            np.testing.assert_array_equal(after[i][name], before[i][name])
        assert after[i]["step"] == 3  # the skipped step is not counted
    assert scaler.get_scale() == 2.0**7


def test_a_bfloat16_parameter_steps_through_its_float32_master() -> None:
    params = _params(dtype=bfloat16)
    optimizer = Adam8bit(params, lr=1e-3)
    rng = np.random.default_rng(6)
    for _ in range(3):
        for p, g in zip(params, _grads(rng, bfloat16), strict=True):
            p.grad = from_numpy(g)
        optimizer.step()
    for i, p in enumerate(params):
        master = optimizer.state_dict()["state"][i]["master_param"]
        assert master.dtype == np.float32
        np.testing.assert_array_equal(p.numpy(), master.astype(bfloat16))


def test_the_functional_form_over_pyopencl_arrays_steps_as_the_class_does() -> None:
    """Another framework's memory: pyopencl arrays for everything, one entry a parameter."""
    import pyopencl.array as cl_array

    from netcl.core.device import manager
    from netcl.optim.functional import adam8bit as adam8bit_fn

    queue = manager.default().queue
    params = _params()
    optimizer = AdamW8bit(params, lr=1e-2, weight_decay=0.1, fused=False)
    arrays = [cl_array.to_device(queue, p.numpy().reshape(-1)) for p in params]
    state = {name: [cl_array.zeros(queue, n, dtype)
                    for n in (p.size if name.startswith("state") else -(-p.size // BLOCK)
                              for p in params)]
             for name, dtype in (("state1", np.uint8), ("state2", np.uint8),
                                 ("absmax1", np.float32), ("absmax2", np.float32))}
    rng = np.random.default_rng(7)
    for t in range(1, 4):
        grads = _grads(rng)
        for p, g in zip(params, grads, strict=True):
            p.grad = from_numpy(g)
        optimizer.step()
        adam8bit_fn(arrays, [cl_array.to_device(queue, g.reshape(-1)) for g in grads],
                    state["state1"], state["state2"], state["absmax1"], state["absmax2"],
                    [t] * len(params), lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8,
                    weight_decay=0.1, maximize=False, decoupled=True)
    for i, (p, a) in enumerate(zip(params, arrays, strict=True)):
        np.testing.assert_array_equal(a.get().reshape(p.shape), p.numpy())
        np.testing.assert_array_equal(state["state2"][i].get().reshape(p.shape),
                                      optimizer.state_dict()["state"][i]["state2"])
    before = arrays[1].get()
    with pytest.raises(ValueError, match=r"absmax1\[0\] has 1 elements of float32; expected 2"):
        adam8bit_fn([arrays[1]], [arrays[1]], [state["state1"][1]], [state["state2"][1]],
                    [state["absmax1"][0]], [state["absmax2"][1]], [4], lr=1e-2, beta1=0.9,
                    beta2=0.999, eps=1e-8, weight_decay=0.0, maximize=False)
    np.testing.assert_array_equal(arrays[1].get(), before)
