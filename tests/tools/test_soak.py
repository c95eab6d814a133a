"""tools/bench/soak.py, shortened: the pool's bytes in use stay flat once training is under way."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))
import soak  # a script under tools/bench/, not a package

from netcl.core.device import manager


def test_a_training_loop_holds_the_same_bytes_after_its_first_steps() -> None:
    rows = list(soak.soak(steps=240, every=40, device=manager.default("auto"), torch_device=None))
    assert [r.step for r in rows] == [40, 80, 120, 160, 200, 240]
    steady = rows[1:]
    assert {r.bytes_in_use for r in steady} == {rows[0].bytes_in_use}, rows
    assert {r.allocations for r in steady} == {rows[0].allocations}, rows  # nothing new
    assert rows[-1].loss < rows[0].loss  # it trains
