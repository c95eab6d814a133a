"""The README's "Trainer in ten lines" runs (for 2 epochs instead of 20, to stay quick)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_trainer_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")
    section = README.read_text().split("## The Trainer in ten lines", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    assert "T_max=20" in code.group(1) and "epochs=20" in code.group(1)
    source = code.group(1).replace("T_max=20", "T_max=2").replace("epochs=20", "epochs=2")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(source, str(README), "exec"), scope)
    trainer = scope["trainer"]
    assert [r["epoch"] for r in trainer.history] == [1, 2]  # type: ignore[attr-defined]
    assert trainer.history[-1]["val_accuracy"] > 0.8  # type: ignore[attr-defined]
    assert (tmp_path / "digits.safetensors").is_file()
