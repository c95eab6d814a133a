"""netcl.autograd: tape-based reverse-mode automatic differentiation for netcl tensors.

``with Tape() as tape: loss = f(x)`` records the ops; ``tape.backward(loss)``
accumulates d(loss)/d(leaf) into each leaf's ``.grad``. ``no_grad()``
records nothing; ``grad(outputs, inputs)`` returns gradients instead;
``gradcheck`` compares every rule with finite differences.
``register_post_accumulate_grad_hook`` tells a caller, during backward, that
a leaf's gradient is complete (data-parallel training starts sending it then).
"""

from netcl.autograd._version import __version__
from netcl.autograd.functional import grad
from netcl.autograd.grad_mode import is_recording, no_grad
from netcl.autograd.gradcheck import GradcheckError, gradcheck
from netcl.autograd.hooks import RemovableHandle, register_post_accumulate_grad_hook
from netcl.autograd.node import Node
from netcl.autograd.rules import RULES, Rule
from netcl.autograd.tape import Tape

__all__ = [
    "RULES",
    "GradcheckError",
    "Node",
    "RemovableHandle",
    "Rule",
    "Tape",
    "__version__",
    "grad",
    "gradcheck",
    "is_recording",
    "no_grad",
    "register_post_accumulate_grad_hook",
]
