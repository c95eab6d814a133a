"""Mixed precision for end users: ``from netcl.amp import autocast, GradScaler``.

``autocast`` is the tensor layer's (``netcl.core.tensor.autocast``); ``GradScaler``
is netcl-optim's (``netcl.optim.grad_scaler``). This package holds no code of its own.
"""

from netcl.core.tensor.autocast import autocast
from netcl.optim.grad_scaler import GradScaler

__all__ = ["GradScaler", "autocast"]
