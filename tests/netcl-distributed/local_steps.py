"""A rank's own backward and its gradients as host arrays, for the scripts run under mpiexec."""

from __future__ import annotations

from typing import Any

import numpy as np

import netcl.autograd as ag
from netcl.core.tensor import Tensor
from netcl.nn import Module, cross_entropy


def backward(model: Module, x: Tensor, y: Tensor) -> None:
    with ag.Tape() as tape:
        loss = cross_entropy(model(x), y)
    tape.backward(loss)


def grads(model: Module) -> list[np.ndarray[Any, Any]]:
    return [p.grad.numpy().copy() for p in model.parameters()]  # type: ignore[union-attr]
