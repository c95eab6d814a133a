"""The backward rules: one table from op name to rule.

A rule is ``rule(g, node) -> gradients``: ``g`` is the gradient of the
op's output (same shape), ``node`` the op's record (``inputs``, ``output``,
``saved``), and the result holds one gradient per entry of ``node.inputs``,
each of that input's shape and dtype, or None for an input that needs none.
Rules run with no recorder installed, out of the tensor layer's ops. Every
op the tensor layer records must have an entry; ``tests/netcl-autograd``
checks each with ``gradcheck``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from netcl.autograd import elementwise_rules as ew
from netcl.autograd import linalg_rules as la
from netcl.autograd import movement_rules as mv
from netcl.autograd import reduce_rules as rd
from netcl.autograd.node import Node
from netcl.core.tensor import Tensor

Rule = Callable[[Tensor, Node], Sequence[Tensor | None]]

RULES: dict[str, Rule] = {
    # elementwise
    "add": ew.add,
    "sub": ew.sub,
    "mul": ew.mul,
    "div": ew.div,
    "pow": ew.pow,
    "maximum": ew.maximum,
    "minimum": ew.minimum,
    "neg": ew.neg,
    "abs": ew.abs,
    "exp": ew.exp,
    "log": ew.log,
    "sqrt": ew.sqrt,
    "relu": ew.relu,
    "relu_backward": ew.relu_backward,
    "sigmoid": ew.sigmoid,
    "tanh": ew.tanh,
    "erf": ew.erf,
    "where": ew.where,
    "cast": ew.identity,
    "copy": ew.identity,
    # reductions
    "sum": rd.sum,
    "mean": rd.mean,
    "max": rd.extremum,
    "min": rd.extremum,
    "logsumexp": rd.logsumexp,
    # movement
    "reshape": mv.reshape,
    "permute": mv.permute,
    "expand": mv.expand,
    "getitem": mv.getitem,
    "cat": mv.cat,
    # gathers
    "index_select": mv.index_select,
    "take_along_axis": mv.take_along_axis,
    # linear algebra
    "matmul": la.matmul,
    "conv2d": la.conv2d,
    "unfold": la.unfold,
    "fold": la.fold,
    "max_pool2d": la.max_pool2d,
    "scaled_dot_product_attention": la.scaled_dot_product_attention,
}
