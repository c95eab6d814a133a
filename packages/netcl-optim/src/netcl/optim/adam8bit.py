"""Adam8bit and AdamW8bit: Adam and AdamW whose moments are kept in 8 bits."""

from __future__ import annotations

from typing import ClassVar

from netcl.optim.adam import AdamArguments
from netcl.optim.adamw import AdamWArguments
from netcl.optim.flat_layout import StepBatch
from netcl.optim.functional.adam import ADAM_MATH
from netcl.optim.functional.adam8bit import (
    BLOCK,
    Adam8bitHyperparameters,
    Adam8bitState,
    AdamW8bitHyperparameters,
    adam8bit_step,
)
from netcl.optim.optimizer import COMMON_ARGS_DOC, PARAMS_DOC


class Adam8bit(AdamArguments):
    """Adam with both moments stored in 8 bits (bitsandbytes' ``Adam8bit``, its names).
    {ADAM_MATH}
    m and v are kept block-wise quantised (:mod:`netcl.optim.functional.adam8bit`):
    one byte per element, an index into the dynamic data type (signed for m,
    unsigned for v), times the float32 absolute maximum of its block of {BLOCK}
    elements of one parameter. A step dequantises, applies the update above in
    float32 (the parameter moves by the new, unrounded moments) and requantises,
    all in one kernel launch per param group and dtype, as :class:`Adam`'s. State
    is about 2.03 bytes per parameter, against Adam's 8; the step reads and writes
    16 bytes per float32 parameter, against Adam's 28.

    State per parameter, as bitsandbytes names it: ``state1`` and ``state2`` (the
    codes of m and v: uint8, the parameter's shape), ``absmax1`` and ``absmax2``
    (float32, one per block), ``step``. A state dict round-trips exactly (the
    codes themselves). Unlike bitsandbytes, small parameters are quantised too
    (it keeps tensors under 4096 elements in float32), and ``amsgrad`` is refused.
    Steps under a GradScaler take its buffers as :class:`Adam`'s kernel does.
    The blocks need whole parameters, so ZeRO-1 refuses it.

    Args:
        {PARAMS_DOC}
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: coupled L2 coefficient, >= 0 (see :class:`AdamW8bit` for decoupled).
        amsgrad: must be False (accepted for Adam's signature).
        maximize: ascend instead of descend.
        {COMMON_ARGS_DOC}

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones(300, np.float32)))
    >>> optimizer = Adam8bit([w], lr=0.1)
    >>> w.grad = from_numpy(np.full(300, 2.0, np.float32))
    >>> optimizer.step()  # the first step moves each element by lr, as Adam's does
    >>> w.numpy()[:3].round(6), optimizer.state[w]["state1"].dtype
    (array([0.9, 0.9, 0.9], dtype=float32), dtype('uint8'))
    """

    __doc__ = str(__doc__).format(
        ADAM_MATH=ADAM_MATH, BLOCK=BLOCK, PARAMS_DOC=PARAMS_DOC, COMMON_ARGS_DOC=COMMON_ARGS_DOC
    )
    hyperparameters = Adam8bitHyperparameters
    #: AdamW8bit sets this, as AdamW does.
    decoupled: ClassVar[bool] = False
    _step_supports_amp_scaling: ClassVar[bool] = True
    #: A block's scale covers whole parameters: an element range is not a share of a step.
    shards_elementwise = False

    def _update(self, hyper: Adam8bitHyperparameters, batch: StepBatch) -> None:
        adam8bit_step(hyper, batch.params, batch.grads, batch.named(Adam8bitState), batch.sizes,
                      batch.steps, decoupled=self.decoupled, live=batch.live,
                      grad_scaling=batch.grad_scaling)


class AdamW8bit(Adam8bit, AdamWArguments):
    """:class:`Adam8bit` with AdamW's decoupled weight decay (``p *= 1 - lr * weight_decay``
    before the update; default ``weight_decay=1e-2``, as PyTorch's AdamW).

    >>> import numpy as np
    >>> from netcl.core.tensor import Parameter, from_numpy
    >>> w = Parameter(from_numpy(np.ones(2, np.float32)))
    >>> optimizer = AdamW8bit([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = from_numpy(np.zeros(2, np.float32))
    >>> optimizer.step()  # a zero gradient: only the decay, p * (1 - 0.1 * 0.5)
    >>> w.numpy()
    array([0.95, 0.95], dtype=float32)
    """

    decoupled: ClassVar[bool] = True
    hyperparameters = AdamW8bitHyperparameters
