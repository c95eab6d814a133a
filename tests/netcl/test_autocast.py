"""autocast against torch.autocast on CPU: dtypes of every intermediate, values, gradients,
nesting, disabling, the weight-cast cache, and a GradScaler training step.

Tolerances come from the rounding the low dtype admits. Both sides cast the same
float32 values to the low dtype with round-to-nearest-even, so the operands agree
bit for bit; a matmul accumulates in float32 in an order of its own and rounds
once, so its result may sit one unit of the low dtype (``UNIT[dtype]`` relative)
from torch's. Everything downstream moves by at most what that unit moves it by,
bounded through the absolute values of the other operand.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

import netcl.autograd as ag
from netcl.amp import GradScaler, autocast
from netcl.core.tensor import autocast as autocast_module
from netcl.core.tensor import bfloat16, float16, float32, from_numpy, ops
from netcl.nn import Linear, ReLU, Sequential, cross_entropy
from netcl.nn import functional as F
from netcl.optim import Adam

Array = np.ndarray[Any, Any]
# One unit in the last place, relative to a value's power of two.
UNIT = {bfloat16: 2.0**-7, float16: 2.0**-10}
TORCH = {bfloat16: torch.bfloat16, float16: torch.float16}


def models(seed: int = 0) -> tuple[Sequential, torch.nn.Sequential]:
    ours = Sequential(Linear(None, 12, 16), ReLU(), Linear(None, 16, 5))
    theirs = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    rng = np.random.default_rng(seed)
    for mine, their in zip(ours.parameters(), theirs.parameters(), strict=True):
        values = rng.uniform(-0.5, 0.5, mine.shape).astype(np.float32)
        mine.copy_(from_numpy(values))
        with torch.no_grad():
            their.copy_(torch.from_numpy(values))
    return ours, theirs


def inputs(seed: int = 1) -> tuple[Array, Array]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((8, 12)).astype(np.float32), rng.integers(0, 5, 8)


def as_np(t: torch.Tensor) -> Array:
    return t.detach().float().numpy().astype(np.float64)


@pytest.mark.parametrize("dtype", [bfloat16, float16], ids=str)
def test_forward_and_backward_match_torch_autocast(dtype: np.dtype[Any]) -> None:
    ours, theirs = models()
    x, y = inputs()
    with ag.Tape() as tape, autocast(dtype=dtype):
        h = ours[0](from_numpy(x))
        r = ours[1](h)
        logits = ours[2](r)
        loss = cross_entropy(logits, y)
    tape.backward(loss)
    with torch.autocast("cpu", dtype=TORCH[dtype]):
        th = theirs[0](torch.from_numpy(x))
        tr = theirs[1](th)
        tlogits = theirs[2](tr)
        tloss = torch.nn.functional.cross_entropy(tlogits, torch.from_numpy(y))
    tloss.backward()

    # Same dtype of every intermediate: the linears and relu low, the loss float32,
    # every gradient its parameter's float32.
    assert [t.dtype for t in (h, r, logits, loss)] == [dtype, dtype, dtype, float32]
    assert [t.dtype for t in (th, tr, tlogits, tloss)] == [TORCH[dtype]] * 3 + [torch.float32]
    assert all(p.grad is not None and p.grad.dtype == float32 for p in ours.parameters())

    unit = UNIT[dtype]
    x_abs = np.abs(x.astype(np.float64))
    w1, w2 = (np.abs(as_np(theirs[i].weight)) for i in (0, 2))
    # torch's linear adds the bias inside its product and rounds once; netcl's rounds the
    # product, then the sum: half a unit of |x| @ |W| more, and half a unit of the
    # result each side, plus whatever difference the input brings in through |W|.
    def linear_bound(input_error: Array, input_abs: Array, w: Array, out: Array) -> Array:
        bound: Array = input_error @ w.T + unit * (input_abs @ w.T) + unit * np.abs(out)
        return bound + unit * 2.0**-14  # the low dtype's subnormal spacing, near 0

    bound_h = linear_bound(np.zeros_like(x_abs), x_abs, w1, as_np(th))
    assert (np.abs(h.numpy().astype(np.float64) - as_np(th)) <= bound_h).all()
    # relu is 1-Lipschitz, so r is off by at most what h is.
    r_abs = np.abs(as_np(tr))
    bound_logits = linear_bound(bound_h, r_abs, w2, as_np(tlogits))
    assert (np.abs(logits.numpy().astype(np.float64) - as_np(tlogits)) <= bound_logits).all()
    # The loss moves by at most the largest logit difference of each sample (softmax is
    # 1-Lipschitz in the max norm, and the mean keeps that), plus float32 rounding.
    assert abs(float(loss.item()) - tloss.item()) <= bound_logits.max(axis=1).mean() + 1e-6

    # W2's gradient is dlogits^T r: dlogits (softmax - onehot) / N moves by at most twice
    # the largest logit difference over N, r by bound_h; dlogits rounds to the low dtype
    # and the product rounds once: a unit each of the absolute product.
    d_logits = (np.abs(as_np(torch.softmax(tlogits.float(), 1))) + 1.0) / len(y)
    d_error = 2 * bound_logits.max(axis=1, keepdims=True) / len(y)
    bound_w2 = (d_error.T @ (r_abs + bound_h) + d_logits.T @ bound_h
                + 2 * unit * (d_logits.T @ r_abs) + 1e-7)
    grad_w2 = ours[2].weight.grad.numpy()
    assert (np.abs(grad_w2 - as_np(theirs[2].weight.grad)) <= bound_w2).all()


def test_nested_disabled_and_outside() -> None:
    a = from_numpy(np.ones((2, 3), np.float32))
    assert autocast_module.low_precision_dtype() is None
    with autocast():
        assert ops.matmul(a, a.T).dtype == bfloat16
        with autocast(enabled=False):
            assert ops.matmul(a, a.T).dtype == float32
            with autocast(dtype=float16):
                assert ops.matmul(a, a.T).dtype == float16
        assert ops.matmul(a, a.T).dtype == bfloat16
        assert ops.add(a, a).dtype == float32  # not on the list: runs as given
    assert ops.matmul(a, a.T).dtype == float32

    @autocast(dtype=float16)
    def f() -> Any:
        return ops.matmul(a, a.T).dtype

    assert f() == float16
    with pytest.raises(ValueError, match="dtype must be bfloat16 or float16"):
        autocast(dtype=float32)


def test_a_weight_is_cast_once_per_forward() -> None:
    layer = Linear(None, 4, 4)
    x = from_numpy(np.ones((2, 4), np.float32))
    with ag.Tape() as tape, autocast():
        layer(layer(x))
        casts = [n for n in tape.nodes() if n.op == "cast" and n.inputs[0] is layer.weight]
        assert len(casts) == 1
    with ag.Tape() as tape, autocast():
        layer(x)
        # A new region (and tape): cast afresh, so the new tape has its own record.
        assert sum(1 for n in tape.nodes() if n.op == "cast" and n.inputs[0] is layer.weight) == 1


def test_bf16_training_step_with_grad_scaler_matches_torch() -> None:
    """Autocast + GradScaler + Adam, three steps: the parameters move within the bf16
    tolerance of torch's (the gradients agree to three bf16 units, Adam normalizes
    them, so each step moves a parameter by lr times (1 +- a few units))."""
    ours, theirs = models(2)
    x, y = inputs(3)
    optimizer, torch_optimizer = Adam(ours.parameters(), lr=1e-2), torch.optim.Adam(
        theirs.parameters(), lr=1e-2)
    scaler, torch_scaler = GradScaler(init_scale=256.0), torch.amp.GradScaler("cpu",
                                                                                init_scale=256.0)
    for _ in range(3):
        with ag.Tape() as tape:
            with autocast():
                loss = cross_entropy(ours(from_numpy(x)), y)
            scaled = scaler.scale(loss)  # on the tape, outside autocast (torch's recipe)
        tape.backward(scaled)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        torch_optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)),
                                                      torch.from_numpy(y))
        torch_scaler.scale(tloss).backward()
        torch_scaler.step(torch_optimizer)
        torch_scaler.update()
    assert scaler.get_scale() == torch_scaler.get_scale()
    for mine, their in zip(ours.parameters(), theirs.parameters(), strict=True):
        # Three steps of at most lr each; where a gradient is near 0 its sign (hence the
        # step) may differ, so the bound is the whole travel of 3 lr, and nearly every
        # element must be much closer: within 3 lr x 8 bf16 units.
        diff = np.abs(mine.numpy() - their.detach().numpy())
        assert (diff <= 3 * 1e-2 + 1e-6).all()
        assert np.mean(diff <= 3 * 1e-2 * 8 * UNIT[bfloat16]) > 0.9


def test_bfloat16_host_values_are_ml_dtypes() -> None:
    host = np.array([1.5, -2.25], ml_dtypes.bfloat16)
    assert from_numpy(host).dtype == bfloat16


def test_the_readme_recipe_runs() -> None:
    """README's "Mixed precision" recipe, as written."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Mixed precision", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    scope: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), scope)
    assert scope["loss"].dtype == float32
    assert scope["scaler"].get_scale() == 2.0**16  # three clean steps: no change yet
    assert all(p.grad is None for p in scope["model"].parameters())


def _float_inputs(seed: int, *shapes: tuple[int, ...]) -> list[Array]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("dtype", [bfloat16, float16], ids=str)
@pytest.mark.parametrize("dropout", [False, True], ids=["fused", "dropout-path"])
def test_attention_runs_in_the_low_dtype_as_torch_autocasts_it(dtype: np.dtype[Any],
                                                               dropout: bool) -> None:
    """scaled_dot_product_attention is on torch's lower-precision list: float32 query, key,
    value (and a float mask) are cast, the result is the low dtype; its gradients come back
    float32. Values within the roundings the low dtype adds (bounded below)."""
    q, k, v, mask = _float_inputs(3, (2, 5, 8), (2, 6, 8), (2, 6, 4), (5, 6))
    leaves = [from_numpy(a).requires_grad_() for a in (q, k, v)]
    with ag.Tape() as tape, autocast(dtype=dtype):
        # dropout_p=1e-9 takes the unfused path and drops (almost surely) nothing.
        out = F.scaled_dot_product_attention(*leaves, attn_mask=from_numpy(mask),
                                             dropout_p=1e-9 if dropout else 0.0)
        loss = ops.sum(ops.cast(out, float32))
    tape.backward(loss)
    with torch.autocast("cpu", dtype=TORCH[dtype]):
        expected = torch.nn.functional.scaled_dot_product_attention(
            *(torch.from_numpy(a) for a in (q, k, v)), attn_mask=torch.from_numpy(mask))
    assert out.dtype == dtype and expected.dtype == TORCH[dtype]
    assert all(t.grad is not None and t.grad.dtype == float32 for t in leaves)
    # Against float64 attention on the rounded inputs: a score may carry the rounding of
    # its low-dtype matmul, half a unit of |score|, which moves a softmax weight by a
    # factor within exp(+-2 * that); the weights may be cast to the low dtype for the
    # second matmul (half a unit each) and each output rounded (half a unit of |out|).
    # The weights sum to 1, so each relative error is scaled by at most max |v|.
    low = [a.astype(np.dtype(dtype)).astype(np.float64) for a in (q, k, v, mask)]
    scores = low[0] @ low[1].transpose(0, 2, 1) / np.sqrt(8) + low[3]
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    reference = weights @ low[2]
    half = UNIT[dtype] / 2
    bound = (np.abs(scores).max() * half * 2 + half + half) * np.abs(low[2]).max()
    assert np.max(np.abs(out.numpy().astype(np.float64) - reference)) <= bound
    assert np.max(np.abs(as_np(expected) - reference)) <= bound  # the bound fits torch too


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")  # torch's
@pytest.mark.parametrize("dtype", [bfloat16, float16], ids=str)
def test_norms_follow_torchs_cuda_autocast_and_keep_a_16_bit_inputs_dtype(
        dtype: np.dtype[Any]) -> None:
    """Under autocast layer_norm and group_norm give float32 (torch's CUDA float32 list;
    its CPU autocast lists no norm); rms_norm and batch_norm, on no list, give their
    input's dtype (what torch's CUDA autocast gave on the H200: README, issue 28's note).
    Outside autocast every norm of a 16-bit input with float32 weights gives the input's
    dtype, normalised in float32 and rounded once, as torch's: checked against torch."""
    (x,) = _float_inputs(4, (4, 6, 3, 3))
    low = from_numpy(x.astype(np.dtype(dtype)))
    w6, b6 = _float_inputs(5, (6,), (6,))
    w3, b3 = _float_inputs(6, (3,), (3,))
    tx, tw6, tb6, tw3, tb3 = (torch.from_numpy(a) for a in (x, w6, b6, w3, b3))
    tx = tx.to(TORCH[dtype])

    def norms(ours: bool) -> dict[str, Any]:
        if ours:
            w, b, v, c = (from_numpy(a) for a in (w6, b6, w3, b3))
            mean, var = from_numpy(np.zeros(6, np.float32)), from_numpy(np.ones(6, np.float32))
            return {"layer_norm": F.layer_norm(low, (3,), v, c),
                    "group_norm": F.group_norm(low, 3, w, b),
                    "rms_norm": F.rms_norm(low, (3,), v),
                    "batch_norm": F.batch_norm(low, mean, var, w, b, training=True)}
        tf = torch.nn.functional
        return {"layer_norm": tf.layer_norm(tx, (3,), tw3, tb3),
                "group_norm": tf.group_norm(tx, 3, tw6, tb6),
                "rms_norm": tf.rms_norm(tx, (3,), tw3),
                "batch_norm": tf.batch_norm(tx, torch.zeros(6), torch.ones(6), tw6, tb6,
                                            training=True)}

    with autocast(dtype=dtype):
        inside = norms(True)
    assert {name: t.dtype for name, t in inside.items()} == {
        "layer_norm": float32, "group_norm": float32, "rms_norm": dtype, "batch_norm": dtype}
    theirs = norms(False)
    for name, ours in norms(True).items():
        expected = theirs[name]
        assert ours.dtype == dtype and expected.dtype == TORCH[dtype], name
        # Normalised in float32 on both sides (differing by float32 roundings), then each
        # rounded once to the low dtype: at most one unit apart.
        values = as_np(expected)
        assert np.all(np.abs(ours.numpy().astype(np.float64) - values)
                      <= UNIT[dtype] * np.maximum(np.abs(values), 2.0**-14)), name
    # Inside autocast the float32 results are the same normalisation, unrounded.
    for name in ("layer_norm", "group_norm"):
        values = as_np(theirs[name])
        assert np.all(np.abs(inside[name].numpy() - values)
                      <= UNIT[dtype] / 2 * np.maximum(np.abs(values), 2.0**-14)), name
