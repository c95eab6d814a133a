"""BatchNorm, GroupNorm, RMSNorm, AvgPool2d and AdaptiveAvgPool2d against PyTorch: forward,
backward, running statistics over steps, torch's state dicts, and gradcheck rows."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import netcl.autograd as ag
import netcl.nn as nn
from netcl.core.tensor import Tensor, from_numpy, ops, tensor
from netcl.nn import functional as F

# Means and variances over at most a few hundred fp32 values, then a division: each
# result within a few hundred 2^-24 of its scale; 1e-5 of the largest entry holds that
# with margin and fails on a wrong axis, an unbiased variance where a biased one belongs
# or a momentum applied the wrong way (1e-2 and more).
TOL = 1e-5


def assert_close(ours: np.ndarray[Any, Any], theirs: torch.Tensor, what: str = "") -> None:
    expected = theirs.detach().numpy()
    scale = max(float(np.abs(expected).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOL * scale, err_msg=what)


def check_step(ours: nn.Module, theirs: torch.nn.Module, x: np.ndarray[Any, Any],
               rng: np.random.Generator) -> None:
    """One forward and backward of both on ``x``: output, input and parameter grads."""
    x_ours, x_t = from_numpy(x).requires_grad_(), torch.tensor(x, requires_grad=True)
    expected = theirs(x_t)
    grad = rng.standard_normal(expected.shape).astype(np.float32)
    expected.backward(torch.tensor(grad))
    with ag.Tape() as tape:
        out = ours(x_ours)
    tape.backward(out, from_numpy(grad))
    assert_close(out.numpy(), expected, "output")
    assert_close(x_ours.grad.numpy(), x_t.grad, "input grad")
    reference = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert param.grad is not None
        assert_close(param.grad.numpy(), reference[name].grad, name)
        param.grad = None
    theirs.zero_grad()


BATCH_NORM_CASES: list[tuple[str, Callable[[Any], Any], tuple[int, ...], dict[str, Any]]] = [
    ("1d_2d_input", nn.BatchNorm1d, (8, 3), {}),
    ("1d_3d_input_momentum_none", nn.BatchNorm1d, (4, 3, 5), dict(momentum=None)),
    ("2d", nn.BatchNorm2d, (4, 3, 3, 5), dict(momentum=0.3)),
    ("2d_no_affine", nn.BatchNorm2d, (2, 3, 4, 4), dict(affine=False)),
    ("2d_no_running_stats", nn.BatchNorm2d, (2, 3, 4, 4), dict(track_running_stats=False)),
]


@pytest.mark.parametrize(("name", "cls", "shape", "kwargs"), BATCH_NORM_CASES,
                         ids=[c[0] for c in BATCH_NORM_CASES])
def test_batch_norm_over_ten_steps_then_eval_matches_torch(
    name: str, cls: Callable[..., nn.Module], shape: tuple[int, ...], kwargs: dict[str, Any],
) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    ours = cls(None, 3, **kwargs)
    theirs = getattr(torch.nn, cls.__name__)(3, **kwargs)
    if kwargs.get("affine", True):
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            theirs.bias.normal_()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for _ in range(10):
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        check_step(ours, theirs, x, rng)
    state = ours.state_dict()
    assert state.keys() == theirs.state_dict().keys()
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(state[key], value.numpy(), rtol=TOL, atol=TOL, err_msg=key)
    ours.eval()
    theirs.eval()
    check_step(ours, theirs, rng.standard_normal(shape).astype(np.float32), rng)


def test_batch_norm_refuses_one_value_per_channel_and_counts_nothing() -> None:
    layer = nn.BatchNorm1d(None, 3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(from_numpy(np.ones((1, 3), np.float32)))
    with pytest.raises(ValueError, match="3 channels"):
        layer(from_numpy(np.ones((4, 2), np.float32)))
    assert int(layer.state_dict()["num_batches_tracked"]) == 0


class TorchResNetBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(4)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1))


def test_a_torch_conv_batchnorm_state_dict_loads_and_predicts_the_same() -> None:
    torch.manual_seed(2)
    theirs = TorchResNetBlock()
    theirs.train()
    for _ in range(3):  # running statistics and num_batches_tracked away from their start
        theirs(torch.randn(4, 2, 6, 6))
    theirs.eval()
    ours = nn.Sequential(nn.Conv2d(None, 2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(None, 4),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(None, 4, 3))
    names = dict(zip(["0", "1", "4", "5"], ["conv", "bn", "pool", "fc"], strict=True))
    result = ours.load_state_dict(
        {f"{next(k for k, v in names.items() if key.startswith(v + '.'))}.{key.split('.', 1)[1]}":
         value.numpy() for key, value in theirs.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys
    ours.eval()
    x = np.random.default_rng(0).standard_normal((3, 2, 6, 6)).astype(np.float32)
    assert_close(ours(tensor(x)).numpy(), theirs(torch.tensor(x)))


LAYER_CASES: list[tuple[str, Callable[[], nn.Module], Callable[[], torch.nn.Module],
                        tuple[int, ...]]] = [
    ("group_norm", lambda: nn.GroupNorm(None, 2, 6), lambda: torch.nn.GroupNorm(2, 6),
     (3, 6, 4, 2)),
    ("group_norm_3d_no_affine", lambda: nn.GroupNorm(None, 3, 3, affine=False),
     lambda: torch.nn.GroupNorm(3, 3, affine=False), (2, 3, 5)),
    ("rms_norm", lambda: nn.RMSNorm(None, 6), lambda: torch.nn.RMSNorm(6), (3, 4, 6)),
    ("rms_norm_two_axes_eps", lambda: nn.RMSNorm(None, (4, 6), eps=1e-3),
     lambda: torch.nn.RMSNorm((4, 6), eps=1e-3), (3, 4, 6)),
    ("avg_pool", lambda: nn.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2), (2, 3, 6, 5)),
    ("avg_pool_padded", lambda: nn.AvgPool2d(3, 2, 1), lambda: torch.nn.AvgPool2d(3, 2, 1),
     (2, 2, 7, 6)),
    ("avg_pool_padding_excluded", lambda: nn.AvgPool2d((3, 2), 1, 1, count_include_pad=False),
     lambda: torch.nn.AvgPool2d((3, 2), 1, 1, count_include_pad=False), (1, 2, 5, 4)),
    ("avg_pool_divisor", lambda: nn.AvgPool2d(2, divisor_override=3),
     lambda: torch.nn.AvgPool2d(2, divisor_override=3), (1, 2, 4, 4)),
    # ceil_mode: partial last windows, divided by what they cover of the input (and of its
    # padding when count_include_pad); a window that would start in the bottom padding is
    # dropped (7 rows padded by 1, kernel 2, stride 2: 4 windows where ceil gives 5), while
    # 6 columns padded by 1, kernel 3, stride 2 get a fourth, partial one.
    ("avg_pool_ceil", lambda: nn.AvgPool2d(2, ceil_mode=True),
     lambda: torch.nn.AvgPool2d(2, ceil_mode=True), (2, 3, 5, 7)),
    ("avg_pool_ceil_padded", lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True),
     lambda: torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True), (1, 2, 6, 7)),
    ("avg_pool_ceil_padding_excluded",
     lambda: nn.AvgPool2d((3, 2), 2, 1, ceil_mode=True, count_include_pad=False),
     lambda: torch.nn.AvgPool2d((3, 2), 2, 1, ceil_mode=True, count_include_pad=False),
     (1, 2, 6, 5)),
    ("avg_pool_ceil_window_dropped", lambda: nn.AvgPool2d((2, 3), 2, 1, ceil_mode=True),
     lambda: torch.nn.AvgPool2d((2, 3), 2, 1, ceil_mode=True), (1, 2, 7, 6)),
    ("avg_pool_ceil_divisor", lambda: nn.AvgPool2d(2, ceil_mode=True, divisor_override=3),
     lambda: torch.nn.AvgPool2d(2, ceil_mode=True, divisor_override=3), (1, 2, 5, 5)),
    ("adaptive_uneven", lambda: nn.AdaptiveAvgPool2d((3, 4)),
     lambda: torch.nn.AdaptiveAvgPool2d((3, 4)), (2, 3, 7, 9)),
    ("adaptive_keep_width", lambda: nn.AdaptiveAvgPool2d((2, None)),
     lambda: torch.nn.AdaptiveAvgPool2d((2, None)), (2, 3, 5, 4)),
    ("adaptive_global", lambda: nn.AdaptiveAvgPool2d(1),
     lambda: torch.nn.AdaptiveAvgPool2d(1), (2, 3, 5, 4)),
]


@pytest.mark.parametrize(("name", "make", "make_torch", "shape"), LAYER_CASES,
                         ids=[c[0] for c in LAYER_CASES])
def test_layer_matches_torch(name: str, make: Callable[[], nn.Module],
                             make_torch: Callable[[], torch.nn.Module],
                             shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    ours, theirs = make(), make_torch()
    with torch.no_grad():
        for param in theirs.parameters():
            param.uniform_(0.5, 1.5)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    check_step(ours, theirs, rng.standard_normal(shape).astype(np.float32), rng)


GRADCHECK_CASES: list[tuple[str, Callable[..., Tensor], list[tuple[int, ...]]]] = [
    ("batch_norm_train", lambda x, w, b: F.batch_norm(x, None, None, w, b, True),
     [(4, 3, 2), (3,), (3,)]),
    ("group_norm", lambda x, w: F.group_norm(x, 2, w), [(2, 4, 3), (4,)]),
    ("rms_norm", lambda x, w: F.rms_norm(x, (4,), w), [(3, 4), (4,)]),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), [(1, 2, 5, 5)]),
    ("avg_pool2d_ceil", lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True), [(1, 2, 6, 5)]),
    ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [(1, 2, 5, 4)]),
]


@pytest.mark.parametrize(("name", "fn", "shapes"), GRADCHECK_CASES,
                         ids=[c[0] for c in GRADCHECK_CASES])
def test_gradcheck(name: str, fn: Callable[..., Tensor], shapes: list[tuple[int, ...]]) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    inputs = [tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
              for s in shapes]
    assert ag.gradcheck(fn, inputs)


def test_functional_norms_reject_shapes_that_do_not_fit() -> None:
    x = from_numpy(np.ones((2, 6, 3), np.float32))
    with pytest.raises(ValueError, match="divisible"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match="normalized_shape"):
        F.rms_norm(x, (6,))
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(x, from_numpy(np.zeros(5, np.float32)), None)
    assert ops.sum(F.avg_pool2d(from_numpy(np.ones((1, 1, 4, 4), np.float32)), 2)).item() == 4.0
