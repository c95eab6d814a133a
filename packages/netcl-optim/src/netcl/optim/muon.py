"""Muon (Jordan et al., 2024): momentum orthogonalised by Newton-Schulz, for hidden matrices."""

from __future__ import annotations

from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.muon import (
    MUON_MATH,
    NS_DTYPES,
    MuonHyperparameters,
    MuonState,
    muon_step,
)
from netcl.optim.optimizer import PARAMS_DOC, Optimizer, ParamGroup, ParamsLike

_DEFAULT = MuonHyperparameters()


class Muon(Optimizer):
    """Muon: SGD-momentum whose update, per matrix, is replaced by its nearest
    semi-orthogonal matrix (approximately), with PyTorch's semantics.
    {MUON_MATH}
    Muon is for the 2-D weights of hidden layers; as in PyTorch, a parameter that is
    not 2-D is refused when the optimizer (or its group) is made: give biases,
    norms and embeddings to another optimizer (AdamW). A matrix's orthogonalisation
    is a few matmuls of its own shape, so Muon keeps no flat layout; matrices of one
    shape are orthogonalised together, as one batch of matrices.

    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        weight_decay: decoupled coefficient, >= 0.
        momentum: momentum factor, >= 0.
        nesterov: orthogonalise the Nesterov look-ahead instead of the buffer.
        ns_coefficients: (a, b, c) of the quintic Newton-Schulz polynomial.
        eps: the smallest norm a matrix is divided by, >= 0.
        ns_steps: Newton-Schulz iterations, 0 <= ns_steps < 100.
        adjust_lr_fn: None or "original" (lr * sqrt(max(1, rows / cols))), or
            "match_rms_adamw" (lr * 0.2 * sqrt(max(rows, cols))).
        ns_dtype: "bfloat16" (torch's, the default: the iterations round to bfloat16
            where torch's do) or "float32" (a netcl option, not a param-group key).
        allow_shared: as for every optimizer (see :class:`Optimizer`).

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.zeros((2, 3), np.float32)))
    >>> optimizer = Muon([w], lr=0.1, weight_decay=0.0, nesterov=False, momentum=0.0)
    >>> w.grad = from_numpy(np.array([[2, 0, 0], [0, 1, 0]], np.float32))
    >>> optimizer.step()  # a diagonal gradient orthogonalises to about the identity
    >>> bool((w.numpy()[[0, 1], [0, 1]] < -0.06).all()), w.numpy()[:, 2].tolist()
    (True, [0.0, 0.0])
    """

    __doc__ = str(__doc__).format(MUON_MATH=MUON_MATH, PARAMS_DOC=PARAMS_DOC)
    hyperparameters = MuonHyperparameters
    #: It orthogonalises whole matrices: a shard of elements is not a share of its step.
    shards_elementwise = False
    #: Under a GradScaler both of its kernels skip on found_inf; the momentum unscales.
    _step_supports_amp_scaling = True

    def __init__(
        self,
        params: ParamsLike,
        lr: float = _DEFAULT.lr,
        weight_decay: float = _DEFAULT.weight_decay,
        momentum: float = _DEFAULT.momentum,
        nesterov: bool = _DEFAULT.nesterov,
        ns_coefficients: tuple[float, float, float] = _DEFAULT.ns_coefficients,
        eps: float = _DEFAULT.eps,
        ns_steps: int = _DEFAULT.ns_steps,
        adjust_lr_fn: str | None = _DEFAULT.adjust_lr_fn,
        *,
        ns_dtype: str = "bfloat16",
        allow_shared: bool = False,
        master_weights: bool = True,
    ) -> None:
        if ns_dtype not in NS_DTYPES:
            raise ValueError(f"Muon: invalid ns_dtype: {ns_dtype!r} (expected one of {NS_DTYPES})")
        #: Where the Newton-Schulz iterations round: "bfloat16" as torch, or "float32".
        self.ns_dtype = ns_dtype
        defaults = {
            "lr": lr, "weight_decay": weight_decay, "momentum": momentum, "nesterov": nesterov,
            "ns_coefficients": ns_coefficients, "eps": eps, "ns_steps": ns_steps,
            "adjust_lr_fn": adjust_lr_fn,
        }
        super().__init__(params, defaults, allow_shared=allow_shared, fused=False,
                         master_weights=master_weights)

    def _checked_group(self, group: object, index: int, count: int | None) -> ParamGroup:
        checked = super()._checked_group(group, index, count)
        for i, p in enumerate(checked["params"]):
            if len(p.shape) != 2:
                raise ValueError(
                    f"{self._where(index, count)}: params[{i}] has shape {p.shape}; Muon "
                    "steps 2-D matrices only (give other parameters to another optimizer)"
                )
        return checked

    def _update(self, hyper: MuonHyperparameters, batch: StepBatch) -> None:
        shapes = [p.shape for p in batch.params]
        muon_step(hyper, batch.params, batch.grads, batch.named(MuonState).momentum_buffer,
                  shapes, batch.live, ns_dtype=self.ns_dtype, grad_scaling=batch.grad_scaling)
