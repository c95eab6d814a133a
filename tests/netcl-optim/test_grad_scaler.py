"""GradScaler against torch.amp.GradScaler: scales, skipped steps, parameters, state dicts.

Both sides run the same least-squares model from the same start; at given steps an
inf in the input makes every gradient inf or NaN. torch computes its gradients with
autograd; netcl gets the gradient of its own parameters from the closed form
(2/N X^T (X w - y), scaled), through tensor ops, so nothing here needs autograd.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from netcl.amp import GradScaler
from netcl.core.tensor import Parameter, Tensor, float32, from_numpy, ops
from netcl.optim import SGD, Adagrad, Adam, Adamax, AdamW, Lion, Muon, NAdam, RAdam
from netcl.optim.functional import adam

Array = np.ndarray[Any, Any]
INF_STEPS = (3, 7)


def data(steps: int) -> list[tuple[Array, Array]]:
    rng = np.random.default_rng(7)
    batches = []
    for step in range(1, steps + 1):
        x = rng.standard_normal((16, 5)).astype(np.float32)
        if step in INF_STEPS:
            x[2, 1] = np.inf
        batches.append((x, rng.standard_normal((16, 3)).astype(np.float32)))
    return batches


def netcl_grad(w: Tensor, x: Array, y: Array) -> Tensor:
    """d/dw of mean((x w - y)^2)."""
    xt = from_numpy(x)
    residual = ops.sub(ops.matmul(xt, w), from_numpy(y))
    return ops.mul(ops.matmul(ops.transpose(xt, 0, 1), residual), 2.0 / y.size)


def run_both(optimizer_name: str, steps: int = 20, **scaler_args: Any) -> dict[str, Any]:
    start = np.random.default_rng(3).standard_normal((5, 3)).astype(np.float32)
    w = Parameter(from_numpy(start))
    tw = torch.nn.Parameter(torch.from_numpy(start.copy()))
    make = {"adam": (Adam, torch.optim.Adam), "adamw": (AdamW, torch.optim.AdamW),
            "sgd": (SGD, torch.optim.SGD), "radam": (RAdam, torch.optim.RAdam),
            "adamax": (Adamax, torch.optim.Adamax), "adagrad": (Adagrad, torch.optim.Adagrad),
            "nadam": (NAdam, torch.optim.NAdam)}[optimizer_name]
    kwargs = {"lr": 0.05} if optimizer_name == "sgd" else {"lr": 0.01, "weight_decay": 0.01}
    optimizer, torch_optimizer = make[0]([w], **kwargs), make[1]([tw], **kwargs)
    scaler = GradScaler(**scaler_args)
    torch_scaler = torch.amp.GradScaler("cpu", **scaler_args)
    ours: dict[str, list[Any]] = {"scales": [], "theirs": [], "skipped": [], "torch_skipped": []}
    for x, y in data(steps):
        before = w.numpy().copy()
        torch_before = tw.detach().clone()
        # netcl: the scaled loss's gradient (the gradient, scaled: backward is linear),
        # then step and update as torch's recipe does.
        w.grad = scaler.scale(netcl_grad(w, x, y))
        scaler.step(optimizer)
        scaler.update()
        torch_optimizer.zero_grad()
        loss = ((torch.from_numpy(x) @ tw - torch.from_numpy(y)) ** 2).mean()
        torch_scaler.scale(loss).backward()
        torch_scaler.step(torch_optimizer)
        torch_scaler.update()
        ours["scales"].append(scaler.get_scale())
        ours["theirs"].append(torch_scaler.get_scale())
        ours["skipped"].append(bool(np.array_equal(w.numpy(), before)))
        ours["torch_skipped"].append(bool(torch.equal(tw.detach(), torch_before)))
    ours["w"], ours["tw"] = w.numpy(), tw.detach().numpy()
    ours["optimizer"], ours["torch_optimizer"] = optimizer, torch_optimizer
    ours["scaler"], ours["torch_scaler"] = scaler, torch_scaler
    return ours


# RAdam's 20 steps cover both of its branches (rho_t > 5 from step 6 on).
@pytest.mark.parametrize("optimizer_name",
                         ["adam", "adamw", "radam", "adamax", "adagrad", "sgd", "nadam"])
def test_matches_torch_step_for_step(optimizer_name: str) -> None:
    """Adam, AdamW, RAdam, Adamax and Adagrad skip on the device (one launch, their bias
    corrections at the steps taken); SGD and NAdam by reading found_inf on the host."""
    run = run_both(optimizer_name, init_scale=2.0**10, growth_interval=3)
    device_path = optimizer_name not in ("sgd", "nadam")
    assert run["optimizer"]._step_supports_amp_scaling == device_path
    assert run["scales"] == run["theirs"]
    assert run["skipped"] == run["torch_skipped"]
    assert [i + 1 for i, s in enumerate(run["skipped"]) if s] == list(INF_STEPS)
    assert max(run["scales"]) > 2.0**10  # it grew, not only backed off
    # The gradients differ only in float32 summation order (a 16-term sum, a few ulps)
    # and Adam's bias corrections are computed in double on both sides: after 20 steps
    # of an lr-sized update, within 20 x a few ulps of each parameter.
    np.testing.assert_allclose(run["w"], run["tw"], rtol=2e-6 * 20, atol=1e-6)
    if optimizer_name != "sgd":
        ours = run["optimizer"].state_dict()["state"][0]
        theirs = run["torch_optimizer"].state_dict()["state"][0]
        # The skipped steps are not counted, as in torch.
        assert ours["step"] == float(theirs["step"]) == 20 - len(INF_STEPS)
        for key, value in theirs.items():
            if key != "step":  # each state buffer (and NAdam's mu_product)
                # A moment averages gradients of either sign, so its error is a few ulps of
                # the gradients, not of itself (an element may cancel to near zero): the
                # bound is relative to the buffer's largest element.
                scale = float(np.abs(value.numpy()).max())
                np.testing.assert_allclose(ours[key], value.numpy(), rtol=0, atol=1e-5 * scale)


def test_skipped_step_leaves_params_and_state_untouched() -> None:
    w = Parameter(from_numpy(np.ones(6, np.float32)))
    optimizer, scaler = Adam([w], lr=0.1, amsgrad=True), GradScaler(init_scale=8.0)
    w.grad = from_numpy(np.full(6, 8.0, np.float32))
    scaler.step(optimizer)
    scaler.update()
    before = {k: v.copy() if isinstance(v, np.ndarray) else v
              for k, v in optimizer.state_dict()["state"][0].items()}
    params_before = w.numpy().copy()
    w.grad = from_numpy(np.array([1, 2, np.nan, 4, 5, 6], np.float32))
    scaler.step(optimizer)
    scaler.update()
    np.testing.assert_array_equal(w.numpy(), params_before)
    after = optimizer.state_dict()["state"][0]
    assert after["step"] == before["step"] == 1.0
    for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        np.testing.assert_array_equal(after[name], before[name])
    assert scaler.get_scale() == 4.0


def test_unscale_then_step_divides_once() -> None:
    """After unscale_ (to clip, say) the step must not divide by the scale again."""
    w, v = (Parameter(from_numpy(np.zeros(3, np.float32))) for _ in range(2))
    scaled, plain = Adam([w], lr=0.1), Adam([v], lr=0.1)
    scaler = GradScaler(init_scale=16.0)
    g = np.array([0.5, -1.0, 2.0], np.float32)
    w.grad = from_numpy(g * 16)
    scaler.unscale_(optimizer=scaled)
    np.testing.assert_array_equal(w.grad.numpy(), g)
    scaler.step(scaled)
    scaler.update()
    v.grad = from_numpy(g)
    plain.step()
    np.testing.assert_array_equal(w.numpy(), v.numpy())
    with pytest.raises(RuntimeError, match="unscale_\\(\\) is being called after step"):
        scaler.step(scaled)
        scaler.unscale_(scaled)


def test_state_dict_round_trips_and_loads_torchs() -> None:
    run = run_both("adam", steps=8, init_scale=2.0**10, growth_interval=2)
    ours, theirs = run["scaler"].state_dict(), run["torch_scaler"].state_dict()
    assert ours == theirs
    fresh = GradScaler()
    fresh.load_state_dict(theirs)
    assert fresh.state_dict() == theirs
    # Loaded into a scaler whose scale is on the device already: the device value changes.
    run["scaler"].load_state_dict({**theirs, "scale": 3.0, "_growth_tracker": 1})
    assert run["scaler"].get_scale() == 3.0 and run["scaler"]._get_growth_tracker() == 1


@pytest.mark.parametrize(("bad", "message"), [
    ({"scale": -1.0}, "init_scale must be a finite float > 0"),
    ({"growth_interval": 1.5}, "growth_interval must be an int"),
    ({"_growth_tracker": -2}, "_growth_tracker must be an int >= 0"),
    ({"backoff_factor": 1.5}, "backoff_factor must be a float in"),
])
def test_bad_state_dict_changes_nothing(bad: dict[str, Any], message: str) -> None:
    scaler = GradScaler(init_scale=32.0)
    good = scaler.state_dict()
    with pytest.raises(ValueError, match=message):
        scaler.load_state_dict({**good, **bad})
    assert scaler.state_dict() == good
    with pytest.raises(ValueError, match="missing keys"):
        scaler.load_state_dict({"scale": 2.0})


def test_disabled_scaler_passes_through() -> None:
    scaler = GradScaler(enabled=False)
    loss = from_numpy(np.array(3.0, np.float32))
    assert scaler.scale(loss) is loss
    assert scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    w = Parameter(from_numpy(np.ones(2, np.float32)))
    optimizer = SGD([w], lr=1.0)
    w.grad = from_numpy(np.ones(2, np.float32))
    scaler.step(optimizer)
    scaler.update()
    np.testing.assert_array_equal(w.numpy(), np.zeros(2, np.float32))


def test_scale_and_errors() -> None:
    scaler = GradScaler(init_scale=4.0)
    loss = from_numpy(np.array(1.5, np.float32))
    assert scaler.scale(loss).numpy() == 6.0
    assert [t.numpy() for t in scaler.scale([loss, loss])] == [6.0, 6.0]
    assert scaler.scale(loss).dtype == float32
    with pytest.raises(TypeError, match="outputs must be a Tensor"):
        scaler.scale(1.5)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="growth_factor must be a finite float > 1"):
        GradScaler(growth_factor=0.5)
    with pytest.raises(AssertionError, match="No inf checks"):
        scaler.update()
    w = Parameter(from_numpy(np.ones(2, np.float32)))
    optimizer = Adam([w])
    w.grad = from_numpy(np.ones(2, np.float32))
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        scaler.step(optimizer, closure=lambda: None)


@pytest.mark.parametrize("make", [
    lambda ps: Lion(ps, lr=1e-3, weight_decay=0.1),
    lambda ps: Adagrad(ps, lr=0.05, lr_decay=0.1, weight_decay=0.01),
    lambda ps: RAdam(ps, lr=0.01, decoupled_weight_decay=True, weight_decay=0.01),
    lambda ps: Muon(ps, lr=0.02, weight_decay=0.1),
], ids=["lion", "adagrad-lr_decay", "radam-decoupled", "muon"])
def test_one_launch_path_equals_stepping_only_the_finite_steps_unscaled(make: Any) -> None:
    """Lion, Muon (a matrix's momentum, orthogonalised, then applied: both launches skip)
    and the options the torch comparison leaves out: through
    the scaler's buffers each step equals a plain step on the unscaled gradient, and an
    overflowed step is no step at all (the later bias corrections count only steps
    taken), bit for bit."""
    start = np.random.default_rng(5).standard_normal((5, 3)).astype(np.float32)
    w, v = Parameter(from_numpy(start)), Parameter(from_numpy(start.copy()))
    scaled, plain = make([w]), make([v])
    scaler = GradScaler(init_scale=2.0**6)
    for x, y in data(12):
        g = netcl_grad(v, x, y)
        w.grad = scaler.scale(g)
        scale = scaler.get_scale()
        scaler.step(scaled)
        scaler.update()
        if np.all(np.isfinite(g.numpy() * scale)):
            v.grad = g
            plain.step()
        np.testing.assert_array_equal(w.numpy(), v.numpy())
    assert not np.array_equal(w.numpy(), start)


def test_functional_adam_takes_the_scalers_buffers_as_the_class_does() -> None:
    """adam(grad_scale=, found_inf=, skipped_steps=) is the class's one-launch path: the
    same parameters and moments bit for bit, and the skipped steps counted on the device."""
    start = np.random.default_rng(6).standard_normal((5, 3)).astype(np.float32)
    w, v = Parameter(from_numpy(start)), from_numpy(start.copy())
    optimizer, scaler = Adam([w], lr=0.01, weight_decay=0.01), GradScaler(init_scale=2.0**6)
    m, s = from_numpy(np.zeros_like(start)), from_numpy(np.zeros_like(start))
    skipped = from_numpy(np.zeros((), np.float32))
    for t, (x, y) in enumerate(data(12), start=1):
        g = netcl_grad(v, x, y)
        scale = scaler.get_scale()
        w.grad = scaler.scale(g)
        scaler.step(optimizer)
        scaler.update()
        overflowed = not np.all(np.isfinite(g.numpy() * scale))
        adam([v], [ops.mul(g, scale)], [m], [s], None, [t], lr=0.01, beta1=0.9, beta2=0.999,
             eps=1e-8, weight_decay=0.01, amsgrad=False, maximize=False,
             grad_scale=from_numpy(np.array(scale, np.float32)),
             found_inf=from_numpy(np.array(overflowed, np.float32)), skipped_steps=skipped)
        np.testing.assert_array_equal(v.numpy(), w.numpy())
    np.testing.assert_array_equal(m.numpy(), optimizer.state[w]["exp_avg"].numpy())
    assert skipped.item() == len(INF_STEPS)
    with pytest.raises(ValueError, match="grad_scale must be a one-element float32 tensor"):
        adam([v], [g], [m], [s], None, [13], lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
             weight_decay=0.0, amsgrad=False, maximize=False, grad_scale=from_numpy(
                 np.ones(2, np.float32)))
    np.testing.assert_array_equal(v.numpy(), w.numpy())  # the refused call changed nothing
