"""DDP's bf16_compress_hook on 2 and 3 ranks (the checks live in bf16_checks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpirun import run


@pytest.mark.parametrize("ranks", [2, 3])  # 3: a rank order and a 1/K that are not trivial
def test_bf16_compress_hook(ranks: int) -> None:
    result, _ = run(ranks, Path(__file__).with_name("bf16_checks.py"))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.count("bf16 checks passed") == ranks
