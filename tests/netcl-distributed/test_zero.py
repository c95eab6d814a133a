"""ZeroRedundancyOptimizer's mechanics on 3 ranks, where buckets split unevenly (zero_checks.py)."""

from __future__ import annotations

from pathlib import Path

from mpirun import run


def test_zero_mechanics_on_three_ranks() -> None:
    result, _ = run(3, Path(__file__).with_name("zero_checks.py"))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.count("zero checks passed") == 3
