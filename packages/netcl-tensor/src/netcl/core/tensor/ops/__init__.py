"""Every op of the tensor layer; each module holds one family."""

from netcl.core.tensor.ops.conv import fold, max_pool2d, max_pool2d_backward, unfold
from netcl.core.tensor.ops.elementwise import (
    abs,
    add,
    add_,
    cast,
    copy,
    copy_,
    div,
    eq,
    erf,
    exp,
    fill_,
    ge,
    gt,
    le,
    log,
    lt,
    maximum,
    minimum,
    mul,
    mul_,
    ne,
    neg,
    pow,
    relu,
    sigmoid,
    sqrt,
    sub,
    tanh,
    where,
)
from netcl.core.tensor.ops.indexing import index_add, index_select, scatter_add, take_along_axis
from netcl.core.tensor.ops.matmul import matmul
from netcl.core.tensor.ops.movement import (
    cat,
    expand,
    flatten,
    getitem,
    permute,
    reshape,
    squeeze,
    stack,
    transpose,
    unsqueeze,
    view,
)
from netcl.core.tensor.ops.reduce import argmax, argmin, logsumexp, max, mean, min, sum

__all__ = [
    "abs", "add", "add_", "argmax", "argmin", "cast", "cat", "copy", "copy_", "div", "eq", "erf",
    "exp", "expand", "fill_", "flatten", "ge", "getitem", "gt", "index_add", "index_select", "le",
    "log", "logsumexp", "lt", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "mul_",
    "ne", "neg", "permute", "pow", "relu", "reshape", "scatter_add", "sigmoid", "sqrt", "squeeze",
    "stack", "sub", "sum", "take_along_axis", "tanh", "transpose", "unsqueeze", "view", "where",
    # conv
    "fold", "max_pool2d", "max_pool2d_backward", "unfold",
]
