"""DistributedDataParallel's mechanics on 2 ranks (the checks live in ddp_checks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpirun import run


@pytest.mark.smoke
def test_ddp_mechanics_on_two_ranks() -> None:
    result, _ = run(2, Path(__file__).with_name("ddp_checks.py"))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.count("ddp checks passed") == 2
