"""The device generator: Philox4x32-10 against Random123's known answers and a host model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import netcl.core.tensor as nt
from netcl.core.device import manager
from netcl.core.tensor import philox

Array = np.ndarray[Any, Any]
M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32_10(counter: list[int], key: list[int]) -> list[int]:
    """Random123's philox4x32 with 10 rounds, one block, in plain Python integers."""
    x0, x1, x2, x3 = counter
    k0, k1 = key
    for _ in range(10):
        p0, p1 = M0 * x0, M1 * x2
        x0, x1, x2, x3 = (p1 >> 32) ^ x1 ^ k0, p1 & MASK, (p0 >> 32) ^ x3 ^ k1, p0 & MASK
        k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
    return [x0, x1, x2, x3]


@pytest.mark.parametrize("counter, key, expected", [
    # Random123 1.09, examples/kat_vectors: philox4x32 10
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([MASK] * 4, [MASK, MASK], [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
])
def test_the_host_model_gives_random123s_known_answers(
    counter: list[int], key: list[int], expected: list[int]
) -> None:
    assert philox4x32_10(counter, key) == expected


def expected_uniform(seed: int, offset: int, n: int) -> Array:
    words = []
    for block in range(-(-n // 4)):
        c = offset + block
        words += philox4x32_10([c & MASK, c >> 32, 0, 0], [seed & MASK, seed >> 32])
    return (np.array(words[:n], np.uint64) >> 8).astype(np.float32) * np.float32(2.0**-24)


@pytest.mark.parametrize("n", [1, 7, 64, 1001])
def test_device_draws_equal_the_host_model_and_move_the_offset(n: int) -> None:
    seed = 0x1234_5678_9ABC_DEF0
    philox.seed(seed)
    philox.set_state({"seed": seed, "offset": 2**32 - 1})  # the counter's carry into word 1
    device = manager.default("auto")
    first = philox.uniform((n,), device).numpy()
    np.testing.assert_array_equal(first, expected_uniform(seed, 2**32 - 1, n))
    assert philox.get_state() == {"seed": seed, "offset": 2**32 - 1 + -(-n // 4)}
    second = philox.uniform((n,), device).numpy()
    np.testing.assert_array_equal(second, expected_uniform(seed, 2**32 - 1 + -(-n // 4), n))
    assert first.min() >= 0.0 and first.max() < 1.0


def test_manual_seed_and_rng_state_restart_the_device_stream() -> None:
    device = manager.default("auto")
    nt.manual_seed(5)
    a = philox.uniform((10,), device).numpy()
    state = nt.get_rng_state()
    b = philox.uniform((10,), device).numpy()
    nt.manual_seed(5)
    np.testing.assert_array_equal(philox.uniform((10,), device).numpy(), a)
    nt.set_rng_state(state)
    np.testing.assert_array_equal(philox.uniform((10,), device).numpy(), b)
    assert not np.array_equal(a, b)
    bad = {**state, "philox": {"seed": -1, "offset": 0}}
    before = philox.get_state()
    with pytest.raises(ValueError, match="device generator's state"):
        nt.set_rng_state(bad)
    assert philox.get_state() == before
