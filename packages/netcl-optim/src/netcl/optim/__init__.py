"""netcl.optim: Adam, AdamW (also with 8-bit state: Adam8bit, AdamW8bit), NAdam, RAdam,
Adamax, Adagrad, Adafactor, Lion, Muon, SGD, Momentum and RMSProp as OpenCL kernels,
plus schedulers.

Depends only on netcl.core.device and netcl.core.tensor. Three layers: the
classes here (param groups, lazy float32 state, state dicts in PyTorch's
layout, the flat layout in ``flat_layout.py``), the functional forms in
:mod:`netcl.optim.functional` (lists of device arrays, usable from another
framework, each beside its kernel: one ``.cl`` file per algorithm family,
launched once per param group and dtype over the flat layout, or once per
parameter with ``fused=False``).
"""

from netcl.optim._version import __version__
from netcl.optim.adafactor import Adafactor
from netcl.optim.adagrad import Adagrad
from netcl.optim.adam import Adam
from netcl.optim.adam8bit import Adam8bit, AdamW8bit
from netcl.optim.adamax import Adamax
from netcl.optim.adamw import AdamW
from netcl.optim.clip_grad import clip_grad_norm_, clip_grad_value_
from netcl.optim.flat_layout import FlatBucket, FlatLayout, StepBatch
from netcl.optim.lion import Lion
from netcl.optim.lr_scheduler import (
    ChainedScheduler,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from netcl.optim.momentum import Momentum
from netcl.optim.muon import Muon
from netcl.optim.nadam import NAdam
from netcl.optim.optimizer import Optimizer
from netcl.optim.param_state import ParamState
from netcl.optim.radam import RAdam
from netcl.optim.rmsprop import RMSProp
from netcl.optim.sgd import SGD
from netcl.optim.step_in_backward import StepInBackward, step_in_backward

__all__ = [
    "SGD",
    "Adafactor",
    "Adagrad",
    "Adam",
    "Adam8bit",
    "AdamW",
    "AdamW8bit",
    "Adamax",
    "ChainedScheduler",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "ExponentialLR",
    "FlatBucket",
    "FlatLayout",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "Lion",
    "Momentum",
    "MultiStepLR",
    "Muon",
    "NAdam",
    "OneCycleLR",
    "Optimizer",
    "ParamState",
    "RAdam",
    "RMSProp",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepBatch",
    "StepInBackward",
    "StepLR",
    "__version__",
    "clip_grad_norm_",
    "clip_grad_value_",
    "step_in_backward",
]
