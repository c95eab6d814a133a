"""An embedding's gather and its gradient's scatter-add, netcl against torch on one device.

Each row times netcl's index_select (an Embedding's forward: rows of a table at token
ids) and index_add (its backward: each token's gradient row added into the table's),
against torch.index_select and Tensor.index_add_ on the same device, in the same run.
The ratio netcl / torch is of times (below 1.0: netcl is faster).

    python tools/bench/indexing.py --threads 1       # a CPU core each
    NETCL_DEVICE=gpu python tools/bench/indexing.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from harness import (
    Contender,
    Report,
    add_json_flag,
    add_threads_flag,
    no_sync,
    set_threads,
    time_contenders,
)

from netcl.core.device import Device, manager
from netcl.core.tensor import from_numpy, ops

# (table rows, row width, tokens): train_step.py's tiny GPT (65 characters, d 64, 32 x 32
# tokens), then a word-level table.
SHAPES = [(65, 64, 1024), (8192, 256, 8192)]


def contenders(rows: int, width: int, tokens: int, device: Device,
               on_gpu: bool) -> dict[str, Contender]:
    rng = np.random.default_rng(0)
    table = rng.standard_normal((rows, width)).astype(np.float32)
    ids = rng.integers(0, rows, tokens)
    grad = rng.standard_normal((tokens, width)).astype(np.float32)
    ours_table, ours_ids, ours_grad = (from_numpy(a, device) for a in (table, ids, grad))
    torch_device = "cuda" if on_gpu else "cpu"
    theirs_table, theirs_ids, theirs_grad = (torch.tensor(a, device=torch_device)
                                             for a in (table, ids, grad))
    sync = torch.cuda.synchronize if on_gpu else no_sync
    return {
        "netcl gather": (lambda: ops.index_select(ours_table, 0, ours_ids), device.synchronize),
        "torch gather": (lambda: torch.index_select(theirs_table, 0, theirs_ids), sync),
        "netcl scatter-add": (lambda: ops.index_add((rows, width), 0, ours_ids, ours_grad),
                              device.synchronize),
        "torch scatter-add": (lambda: torch.zeros_like(theirs_table).index_add_(
            0, theirs_ids, theirs_grad), sync),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_threads_flag(parser)
    add_json_flag(parser)
    args = parser.parse_args()
    threads = set_threads(args.threads)
    device = manager.default("auto")
    on_gpu = device.type == "gpu" and torch.cuda.is_available()
    report = Report("embedding gather and scatter-add", device.name, args.json, threads=threads)
    names = ["netcl gather", "torch gather", "netcl scatter-add", "torch scatter-add"]
    table = report.table("ms per call", names, ratios=[
        ("netcl gather", "torch gather"), ("netcl scatter-add", "torch scatter-add")])
    for rows, width, tokens in SHAPES:
        times = time_contenders(contenders(rows, width, tokens, device, on_gpu), rounds=5,
                                sample_s=0.1)
        table.row(f"{rows} x {width} table, {tokens} tokens",
                  {name: times[name].median * 1e3 for name in names})
    report.finish()


if __name__ == "__main__":
    main()
