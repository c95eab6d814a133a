"""netcl.optim.functional: the optimizers as functions over lists of device arrays.

Usable from another framework with none of netcl's classes: every array may be
a netcl ``Tensor``, a ``pyopencl.array.Array`` or any :class:`DeviceArray`
(buffer, element offset, size, dtype, queue). The caller owns the state arrays
and the step counts; each function updates parameters and state in place and
returns without waiting for the device.
"""

from netcl.optim.functional.adam import AdamHyperparameters, adam, adam_per_tensor, adamw
from netcl.optim.functional.operands import ArrayLike, DeviceArray, Span
from netcl.optim.functional.rmsprop import RMSPropHyperparameters, rmsprop, rmsprop_per_tensor
from netcl.optim.functional.sgd import SGDHyperparameters, momentum, sgd, sgd_per_tensor

__all__ = [
    "AdamHyperparameters",
    "ArrayLike",
    "DeviceArray",
    "RMSPropHyperparameters",
    "SGDHyperparameters",
    "Span",
    "adam",
    "adam_per_tensor",
    "adamw",
    "momentum",
    "rmsprop",
    "rmsprop_per_tensor",
    "sgd",
    "sgd_per_tensor",
]
