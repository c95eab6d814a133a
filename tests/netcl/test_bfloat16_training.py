"""1000 Adam steps of a bfloat16-parameter MLP track the float32-parameter run within
bfloat16 rounding of the parameters (issue 28), through the float32 masters.

Both runs train the same MLP under bfloat16 autocast from the same bfloat16-valued start.
The float32 run's weights enter each matmul cast to bfloat16; the bfloat16 run's weights
are its masters rounded to nearest even, the same cast. So as long as each master equals
the float32 weight, both runs see the same gradients and Adam's float32 arithmetic steps
both the same way: the master stays the float32 run bit for bit, over every step, and the
parameter stays within half a bfloat16 unit of it. Without masters the parameter would be
rounded at every step and drift from the float32 run (test_master_weights.py shows an
update that rounding loses entirely).
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

import netcl.autograd as ag
from netcl.amp import autocast
from netcl.core.tensor import Parameter, Tensor, bfloat16, from_numpy
from netcl.jit import jit
from netcl.nn import cross_entropy
from netcl.nn.functional import linear, relu
from netcl.optim import Adam

BF16 = np.dtype(ml_dtypes.bfloat16)
STEPS = 1000
SHAPES = [(16, 12), (16,), (4, 16), (4,)]


def train(dtype: Any) -> tuple[list[Parameter], Adam, list[float]]:
    rng = np.random.default_rng(4)
    starts = [(rng.standard_normal(s) * 0.3).astype(BF16) for s in SHAPES]
    data = [(from_numpy(rng.standard_normal((32, 12)).astype(np.float32)),
             from_numpy(rng.integers(0, 4, 32).astype(np.int64))) for _ in range(4)]
    params = [Parameter(from_numpy(s.astype(dtype))) for s in starts]
    w1, b1, w2, b2 = params
    optimizer = Adam(params, lr=1e-3)

    def step(x: Tensor, y: Tensor) -> Tensor:
        with ag.Tape() as tape, autocast(dtype=bfloat16):
            loss = cross_entropy(linear(relu(linear(x, w1, b1)), w2, b2), y)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        return loss

    call = jit(step)  # the same steps as eager (test_jit_amp.py), in a fraction of the time
    losses = [float(call(*data[i % len(data)]).item()) for i in range(STEPS)]
    return params, optimizer, losses


def test_a_thousand_steps_of_bfloat16_parameters_track_float32_within_their_rounding() -> None:
    full, _, full_losses = train(np.float32)
    low, optimizer, losses = train(BF16)
    assert losses == full_losses
    assert losses[-1] < 0.75 * losses[0]  # it learned: the weights went somewhere
    rng = np.random.default_rng(4)
    for p, reference in zip(low, full, strict=True):
        start = (rng.standard_normal(p.shape) * 0.3).astype(BF16).astype(np.float64)
        master = optimizer.state[p]["master_param"].numpy()
        assert p.dtype == bfloat16
        np.testing.assert_array_equal(master, reference.numpy())
        np.testing.assert_array_equal(p.numpy().view(np.uint16),
                                      master.astype(BF16).view(np.uint16))
        # Hence within half a bfloat16 unit (2**-8 of the binade's lower end) of float32.
        value = reference.numpy().astype(np.float64)
        unit = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(value), 2.0**-126))) - 7)
        assert np.all(np.abs(p.numpy().astype(np.float64) - value) <= unit / 2)
        # Far from a vacuous bound: most weights moved many bfloat16 units.
        assert np.median(np.abs(value - start) / unit) > 32
