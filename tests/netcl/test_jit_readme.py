"""The README's jit example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.smoke
def test_the_readme_jit_example_runs(capsys: object) -> None:
    section = README.read_text().split("## Capturing a step", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    launches = namespace["train_step"].launches  # type: ignore[attr-defined]
    assert launches.fused < launches.unfused
