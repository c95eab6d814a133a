"""``netcl bench``: run a benchmark script of a netcl source checkout's ``tools/bench``.

The benchmarks compare netcl with PyTorch in one run and need torch, so they
stay scripts of the repository (where their results are recorded) rather
than code every install of netcl carries.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from netcl.cli.errors import UserError

SCRIPTS = {"optim-step": "optim_step.py", "train-step": "train_step.py"}


def find_tools(given: str | None) -> Path:
    """The tools/bench folder: ``given``, or the first found from the current folder upward,
    then from this file upward (an editable install sits inside its checkout)."""
    if given is not None:
        folder = Path(given)
        if not folder.is_dir():
            raise UserError(f"--tools: {folder} is not a folder")
        return folder
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / "tools" / "bench" / "optim_step.py").is_file():
                return folder / "tools" / "bench"
    raise UserError(
        "no tools/bench folder found above the current folder: run from a netcl source "
        "checkout (git clone), or give --tools DIR"
    )


def run_bench(name: str, tools: str | None, args: Sequence[str]) -> int:
    script = find_tools(tools) / SCRIPTS[name]
    if not script.is_file():
        raise UserError(f"{script} does not exist in this checkout")
    return subprocess.call([sys.executable, str(script), *args])
