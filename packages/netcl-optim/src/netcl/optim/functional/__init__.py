"""netcl.optim.functional: the optimizers as functions over lists of device arrays.

Usable from another framework with none of netcl's classes: every array may be
a netcl ``Tensor``, a ``pyopencl.array.Array`` or any :class:`DeviceArray`
(buffer, element offset, size, dtype, queue). The caller owns the state arrays
and the step counts; each function updates parameters and state in place and
returns without waiting for the device.

Each algorithm family is one module here (``adam.py``, ``sgd.py``,
``rmsprop.py``, ``nadam.py``, ``radam.py``, ``adamax.py``, ``adagrad.py``,
``lion.py``, ``muon.py``, ``adafactor.py``, ``adam8bit.py``) beside its kernel
(``adam.cl``, ...): its hyperparameter dataclass, its state's names
(``AdamState``), the host half of its math (``kernel_scalars``), the functional
form (``adam``) and the checked form the optimizer classes call (``adam_step``).
"""

from netcl.optim.functional.adafactor import (
    AdafactorHyperparameters,
    adafactor,
    adafactor_step,
)
from netcl.optim.functional.adagrad import (
    AdagradHyperparameters,
    AdagradState,
    adagrad,
    adagrad_step,
)
from netcl.optim.functional.adam import (
    AdamHyperparameters,
    AdamState,
    AdamWHyperparameters,
    adam,
    adam_step,
    adamw,
)
from netcl.optim.functional.adam8bit import (
    Adam8bitHyperparameters,
    Adam8bitState,
    adam8bit,
    adam8bit_step,
)
from netcl.optim.functional.adamax import (
    AdamaxHyperparameters,
    AdamaxState,
    adamax,
    adamax_step,
)
from netcl.optim.functional.device_arrays import (
    ArrayLike,
    DeviceArray,
    Span,
    span,
    with_master,
)
from netcl.optim.functional.lion import LionHyperparameters, LionState, lion, lion_step
from netcl.optim.functional.muon import MuonHyperparameters, MuonState, muon, muon_step
from netcl.optim.functional.nadam import (
    NAdamHyperparameters,
    NAdamState,
    nadam,
    nadam_step,
)
from netcl.optim.functional.radam import (
    RAdamHyperparameters,
    RAdamState,
    radam,
    radam_step,
)
from netcl.optim.functional.rmsprop import (
    RMSPropHyperparameters,
    RMSPropState,
    rmsprop,
    rmsprop_step,
)
from netcl.optim.functional.sgd import (
    MomentumHyperparameters,
    MomentumState,
    SGDHyperparameters,
    momentum,
    sgd,
    sgd_step,
)

__all__ = [
    "AdafactorHyperparameters",
    "AdagradHyperparameters",
    "AdagradState",
    "Adam8bitHyperparameters",
    "Adam8bitState",
    "AdamHyperparameters",
    "AdamState",
    "AdamWHyperparameters",
    "AdamaxHyperparameters",
    "AdamaxState",
    "ArrayLike",
    "DeviceArray",
    "LionHyperparameters",
    "LionState",
    "MomentumHyperparameters",
    "MomentumState",
    "MuonHyperparameters",
    "MuonState",
    "NAdamHyperparameters",
    "NAdamState",
    "RAdamHyperparameters",
    "RAdamState",
    "RMSPropHyperparameters",
    "RMSPropState",
    "SGDHyperparameters",
    "Span",
    "adafactor",
    "adafactor_step",
    "adagrad",
    "adagrad_step",
    "adam",
    "adam8bit",
    "adam8bit_step",
    "adam_step",
    "adamax",
    "adamax_step",
    "adamw",
    "lion",
    "lion_step",
    "momentum",
    "muon",
    "muon_step",
    "nadam",
    "nadam_step",
    "radam",
    "radam_step",
    "rmsprop",
    "rmsprop_step",
    "sgd",
    "sgd_step",
    "span",
    "with_master",
]
