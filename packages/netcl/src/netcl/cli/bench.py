"""``netcl bench``: run a benchmark script of a netcl source checkout's ``tools/bench``.

The benchmarks compare netcl with PyTorch in one run and need torch, so they
stay scripts of the repository (where their results are recorded) rather
than code every install of netcl carries: from an installed wheel, ``netcl
bench`` says so and what to do (clone the source and run it there, or point
``--tools`` at a checkout's tools/bench).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
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
        "the benchmarks are scripts of netcl's source repository (tools/bench/), not part of "
        f"the installed package, and no tools/bench folder is above {Path.cwd()}: clone the "
        f"source{source_url()}, then run `netcl bench` inside the clone or pass "
        "--tools CLONE/tools/bench"
    )


def source_url() -> str:
    """`` from URL`` where the installed netcl's metadata names its source, else ``""``."""
    try:
        urls = metadata.metadata("netcl").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return ""
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("source", "repository", "homepage"):
            return f" from {url.strip()}"
    return ""


def run_bench(name: str, tools: str | None, args: Sequence[str]) -> int:
    script = find_tools(tools) / SCRIPTS[name]
    if not script.is_file():
        raise UserError(f"{script} does not exist in this checkout")
    return subprocess.call([sys.executable, str(script), *args])
