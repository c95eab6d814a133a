"""Every op of the tensor layer; each module holds one family."""

from netcl.core.tensor.ops.elementwise import (
    abs,
    add,
    add_,
    cast,
    copy,
    copy_,
    div,
    eq,
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

__all__ = [
    "abs", "add", "add_", "cast", "copy", "copy_", "div", "eq", "exp", "fill_", "ge", "gt",
    "le", "log", "lt", "maximum", "minimum", "mul", "mul_", "ne", "neg", "pow", "relu",
    "sigmoid", "sqrt", "sub", "tanh", "where",
]
