"""Every optimizer configuration in optim_cases.CASES against torch.optim, 200 steps each.

Both sides start from the same parameters and see the same random gradients
(some parameters' first gradient arriving late, some groups with their own
hyperparameters, fp16 parameters). Parameters are compared at several steps,
and the final state dicts must have torch's layout and values.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from optim_cases import BY_ID, CASES, CHECKPOINTS, Case, Run, assert_state_matches_torch, gradients

from netcl.optim.functional import kernels


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_matches_torch(case: Case) -> None:
    run = Run(case)
    grads = gradients(case)
    for step in range(1, case.steps + 1):
        run.step(next(grads))
        if step in CHECKPOINTS:
            run.assert_close(f"after step {step} ({case.id})")
    assert_state_matches_torch(
        run.optimizer.state_dict(), run.torch_optimizer.state_dict(), run.half
    )


@pytest.fixture
def gpu_layout() -> Iterator[None]:
    """The GPU's kernels (one element per work-item, no vectors), run on this device."""
    kernels.layout_override["cpu"] = kernels.LAYOUTS["gpu"]
    try:
        yield
    finally:
        kernels.layout_override.clear()


@pytest.mark.parametrize(
    "case_id",
    ["adam-amsgrad-wd", "adamw-fp16", "momentum-maximize-nesterov-wd",
     "sgd-momentum-dampening", "rmsprop-centered-momentum", "sgd-fp16"],
)
@pytest.mark.usefixtures("gpu_layout")
def test_gpu_layout_matches_torch(case_id: str) -> None:
    case = BY_ID[case_id]
    run = Run(case)
    grads = gradients(case)
    for _ in range(30):
        run.step(next(grads))
    run.assert_close(f"after 30 steps with the GPU layout ({case_id})")
