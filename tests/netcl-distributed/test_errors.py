"""Bad arguments to the data-parallel wrappers raise at the call, naming what was wrong.

Run in the test process: a world of one (mpi4py's singleton init), so nothing is sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import netcl.autograd as ag
import netcl.distributed as dist
import netcl.optim as no
from netcl.core.tensor import Parameter, float16, from_numpy
from netcl.nn import Linear
from netcl.optim import Adam


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dist.World]:
    # init() points NETCL_DEVICE at its device; keep that from leaking into other tests.
    monkeypatch.setenv("NETCL_DEVICE", "auto")
    yield dist.init()


@pytest.mark.smoke
def test_a_world_of_one(world: dist.World) -> None:
    assert (world.rank, world.size, world.local_rank, world.local_size) == (0, 1, 0, 1)
    assert dist.init() is world and dist.world() is world
    assert (world.backend, world.backend_reason) == ("mpi", "a world of one sends nothing")
    assert world.nccl is None


def test_init_refuses_an_unknown_backend(world: dist.World) -> None:
    with pytest.raises(ValueError, match="backend must be 'auto', 'nccl' or 'mpi', got 'gloo'"):
        dist.init(backend="gloo")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"module": "not a module"}, TypeError, "expected a netcl.nn.Module, got str"),
        ({"bucket_cap_mb": 0}, ValueError, "bucket_cap_mb must be a positive number, got 0"),
        ({"world": "w"}, TypeError, "expected a netcl.distributed.World, got str"),
    ],
)
def test_ddp_refuses_bad_arguments(
    world: dist.World, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {"module": Linear(world.device.queue, 2, 2), **kwargs}
    module = args.pop("module")
    with pytest.raises(error, match=match):
        dist.DistributedDataParallel(module, **args)


def test_ddp_refuses_a_parameter_that_is_not_float32(world: dist.World) -> None:
    layer = Linear(world.device.queue, 2, 2)
    layer.weight = Parameter(layer.weight.astype(float16))
    with pytest.raises(TypeError, match="parameter 'weight' has dtype float16"):
        dist.DistributedDataParallel(layer)


@pytest.mark.parametrize(
    ("state", "hook", "error", "match"),
    [
        (None, lambda state, bucket: None, TypeError, "hook must be one of netcl's built-ins"),
        ("group", dist.comm_hooks.bf16_compress_hook, TypeError, "pass None, got str"),
    ],
)
def test_register_comm_hook_refuses_what_it_cannot_run(
    world: dist.World, state: Any, hook: Any, error: type[Exception], match: str
) -> None:
    ddp = dist.DistributedDataParallel(Linear(world.device.queue, 2, 2))
    with pytest.raises(error, match=match):
        ddp.register_comm_hook(state, hook)
    ddp.register_comm_hook(None, dist.comm_hooks.bf16_compress_hook)  # nothing was taken
    with pytest.raises(RuntimeError, match="can only be called once"):
        ddp.register_comm_hook(None, dist.comm_hooks.allreduce_hook)


def test_bf16_compress_hook_refuses_the_nccl_path(world: dist.World) -> None:
    # A world whose gradients NCCL averages (a stand-in communicator: this machine has no
    # NVIDIA GPU); the hook runs on the host path only.
    over_nccl = dataclasses.replace(world, backend="nccl", nccl=object())  # type: ignore[arg-type]
    ddp = dist.DistributedDataParallel(Linear(world.device.queue, 2, 2), world=over_nccl)
    with pytest.raises(RuntimeError, match=r"host \(MPI\) path only.*backend='mpi'"):
        ddp.register_comm_hook(None, dist.comm_hooks.bf16_compress_hook)
    ddp.register_comm_hook(None, dist.comm_hooks.allreduce_hook)  # NCCL's float32 average


def test_bf16_compress_hook_in_a_world_of_one_sends_and_rounds_nothing(world: dist.World) -> None:
    layer = Linear(world.device.queue, 3, 2)
    ddp = dist.DistributedDataParallel(layer)
    ddp.register_comm_hook(None, dist.comm_hooks.bf16_compress_hook)
    x = from_numpy(np.array([[1.0, 1 / 3, 1e-3]], np.float32), world.device.queue)
    with ag.Tape() as tape:
        loss = ddp(x).sum()
    tape.backward(loss)
    assert layer.weight.grad is not None
    np.testing.assert_array_equal(layer.weight.grad.numpy(), np.repeat(x.numpy(), 2, axis=0))


def test_zero_refuses_bad_arguments(world: dist.World) -> None:
    w = Parameter(from_numpy(np.ones(3, np.float32), world.device))
    with pytest.raises(TypeError, match=r"optimizer_class must be a netcl\.optim\.Optimizer"):
        dist.ZeroRedundancyOptimizer([w], object)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes no 'fused'"):
        dist.ZeroRedundancyOptimizer([w], Adam, fused=False)
    with pytest.raises(ValueError, match="invalid lr"):
        dist.ZeroRedundancyOptimizer([w], Adam, lr=-1.0)
    zero = dist.ZeroRedundancyOptimizer([w], Adam)
    with pytest.raises(ValueError, match=r"to must be a rank in \[0, 1\), got 1"):
        zero.consolidate_state_dict(to=1)
    with pytest.raises(RuntimeError, match="call consolidate_state_dict"):
        zero.state_dict()
    zero.param_groups[0]["lr"] = float("nan")  # as a broken scheduler might
    w.grad = from_numpy(np.ones(3, np.float32), world.device)
    with pytest.raises(ValueError, match="invalid lr"):
        zero.step()
    np.testing.assert_array_equal(w.numpy(), np.ones(3, np.float32))  # nothing stepped
    assert zero.state_bytes() == 0


@pytest.mark.parametrize("cls", [no.Muon, no.Adafactor, no.Adam8bit])
def test_zero_refuses_an_algorithm_that_steps_whole_matrices(
    world: dist.World, cls: type[no.Optimizer]
) -> None:
    w = Parameter(from_numpy(np.ones((4, 4), np.float32)))
    with pytest.raises(TypeError, match=f"{cls.__name__} steps whole matrices"):
        dist.ZeroRedundancyOptimizer([w], cls, world=world)

