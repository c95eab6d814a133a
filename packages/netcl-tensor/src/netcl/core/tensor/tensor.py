"""Tensor and Parameter: typed, strided views onto pooled OpenCL buffers."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple, SupportsIndex, cast, overload

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array

from netcl.core.device import Device
from netcl.core.tensor import dtypes
from netcl.core.tensor.launch import host_read, transfer
from netcl.core.tensor.recorder import recording
from netcl.core.tensor.strides import contiguous_strides

Shape = tuple[int, ...]
Scalar = float | int | bool
Axes = int | Sequence[int] | None

# What every read from a device runs first, given the device: netcl.core.tensor.deferred
# adds its check of errors found on the device when it is imported (as every op that
# leaves such a check has imported it). A list this module owns, not an import of
# deferred: deferred computes with the ops, which build Tensors.
read_checks: list[Callable[[Device], None]] = []


class Tensor:
    """An n-dimensional array on an OpenCL device.

    A tensor is a view: ``shape``, ``strides`` and ``offset`` (in elements) onto
    ``buffer``, a device buffer usually taken from the device's BufferPool.
    Ops enqueue kernels on the device's in-order queue and return at once;
    only reading a value back (``numpy()``, ``item()``) waits for the device.
    """

    # Slots for what every tensor holds: the launch path makes one per op, and slot
    # stores cost about half of __dict__ ones (a __dict__ stays for anything else).
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_grad",
        "_grad_home",
        "_requires_grad",
        "buffer",
        "device",
        "dtype",
        "is_leaf",
        "offset",
        "shape",
        "strides",
    )

    #: Raises if this tensor's memory was overwritten since it was handed out (a result
    #: of a netcl.jit replay, valid until the next replay); None for every other tensor.
    expiry: Callable[[], None] | None = None

    #: What ``pickle`` and ``copy.deepcopy`` store for a tensor: set by
    #: ``netcl.core.tensor.pickling`` (which the package imports), as it builds tensors.
    reducer: ClassVar[Callable[[Tensor], tuple[Any, ...]]]

    def __init__(
        self,
        buffer: cl.MemoryObjectHolder,
        shape: Sequence[int],
        dtype: dtypes.DTypeLike,
        device: Device,
        strides: Sequence[int] | None = None,
        offset: int = 0,
        requires_grad: bool = False,
    ) -> None:
        self.buffer = buffer
        self.shape: Shape = tuple(int(s) for s in shape)
        self.dtype = dtypes.as_dtype(dtype)
        self.device = device
        self.strides: Shape = (
            contiguous_strides(self.shape) if strides is None else tuple(int(s) for s in strides)
        )
        self.offset = int(offset)
        self._grad: Tensor | None = None
        self._grad_home: Tensor | None = None
        # False once an op that needs a gradient produced this tensor.
        self.is_leaf = True
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def fresh(
        cls,
        buffer: cl.MemoryObjectHolder,
        shape: Shape,
        dtype: np.dtype[Any],
        device: Device,
        strides: Shape | None = None,
        offset: int = 0,
    ) -> Tensor:
        """A tensor as ``Tensor(...)`` makes it, for the launch path: ``shape`` and
        ``strides`` tuples of ints and ``dtype`` a supported dtype already, so nothing
        is converted or checked (the constructor spends microseconds on that)."""
        t = cls.__new__(cls)
        t.buffer = buffer
        t.shape = shape
        t.dtype = dtype
        t.device = device
        t.strides = contiguous_strides(shape) if strides is None else strides
        t.offset = offset
        t._grad = None
        t._grad_home = None
        t.is_leaf = True
        t._requires_grad = False
        return t

    # -- properties ---------------------------------------------------------------------------
    @property
    def queue(self) -> cl.CommandQueue:
        return self.device.queue

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and not dtypes.is_floating(self.dtype):
            raise TypeError(f"only floating tensors can require grad, this one is {self.dtype}")
        self._requires_grad = bool(value)

    @property
    def grad(self) -> Tensor | None:
        """The accumulated gradient, or None; with a grad home, the home itself."""
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        # With a home, a gradient of the home's shape, dtype and device is copied in (one
        # copy_), so whoever holds the home (an optimizer's flat grad buffer) sees it
        # without a pointer chase. Anything else is kept as given: the consumer (an
        # optimizer's step) reports the mismatch where it can name what was expected.
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(
                f"grad must be a netcl Tensor or None, got {type_name(value)}; convert "
                "with netcl.core.tensor.tensor(...) on the tensor's device"
            )
        home = self._grad_home
        if value is None or home is None or value is home or not _fits(value, home):
            self._grad = value
            return
        with recording(None):  # storing a gradient is not an op of the model
            ops.copy_(home, value)
        self._grad = home

    @property
    def grad_home(self) -> Tensor | None:
        """Where assigned gradients are stored, if someone set one (see ``set_grad_home``)."""
        return self._grad_home

    def set_grad_home(self, home: Tensor | None) -> None:
        """Make ``home`` the memory this tensor's gradient lives in (None: no home).

        Contract: ``home`` has this tensor's shape, dtype and device and is
        contiguous. From then on ``t.grad = g`` (g of that shape, dtype and
        device) copies g into ``home`` and ``t.grad`` returns ``home`` itself;
        ``t.grad = None`` drops the gradient but keeps the home, so the next
        assignment lands there again. A gradient already present is copied in
        now. An optimizer with a flat layout sets homes that are views into
        its one grad buffer, which is how autograd's ``leaf.grad = g`` lands
        there. A ``g`` that does not match is stored as given, not copied.
        ``set_grad_home(None)`` keeps the gradient's values in a copy of its own.
        """
        if home is not None and (not _fits(home, self) or not home.is_contiguous):
            raise ValueError(
                f"set_grad_home: the home must be contiguous with this tensor's shape "
                f"{self.shape}, dtype {self.dtype} and device; got shape {home.shape}, "
                f"dtype {home.dtype}, strides {home.strides}"
            )
        current, old_home = self._grad, self._grad_home
        self._grad_home = home
        self._grad = None
        if current is not None and current is old_home and home is None:
            # Leaving the home: the gradient gets memory of its own, so writing to it
            # no longer writes into the home's owner (an optimizer's grad buffer).
            with recording(None):
                current = ops.copy(current)
        if current is not None:
            self.grad = current

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        """The number of elements."""
        return math.prod(self.shape)

    def numel(self) -> int:
        return self.size

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def is_contiguous(self) -> bool:
        expected = contiguous_strides(self.shape)
        return all(
            size == 1 or stride == want
            for size, stride, want in zip(self.shape, self.strides, expected, strict=True)
        )

    @property
    def T(self) -> Tensor:
        return self.transpose(-1, -2) if self.ndim >= 2 else self

    # -- reading back -------------------------------------------------------------------------
    def numpy(self) -> np.ndarray[Any, Any]:
        """A host copy; waits for every op enqueued before it.

        Raises ValueError if a check an op left on the device found a bad value
        (see ``netcl.core.tensor.deferred``): this read waits for it anyway.
        """
        return self._host_copy("numpy()")

    def _host_copy(self, what: str) -> np.ndarray[Any, Any]:
        """:meth:`numpy`, after telling a launch observer that ``what`` reads this value."""
        if self.expiry is not None:
            self.expiry()
        host_read(what)
        for check in read_checks:
            check(self.device)
        if self.is_contiguous:
            source = self
        else:
            # Reading back is not an op of the model: keep the copy off any tape.
            with recording(None):
                source = ops.copy(self)
        host = np.empty(self.shape, dtype=self.dtype)
        if host.size:
            transfer(self.queue, host, source.buffer, src_offset=source.offset * self.itemsize)
        return host

    def item(self) -> Scalar:
        return self._scalar("item()")

    def _scalar(self, what: str) -> Scalar:
        if self.size != 1:
            raise ValueError(
                f"item() needs a tensor of one element, this one has shape {self.shape}"
            )
        value: Scalar = self._host_copy(what).reshape(()).item()
        return value

    def tolist(self) -> Any:
        return self._host_copy("tolist()").tolist()

    def to_array(self) -> cl_array.Array:
        """This tensor as a ``pyopencl.array.Array`` over the same memory (no copy)."""
        return cl_array.Array(
            self.queue,
            self.shape,
            self.dtype,
            strides=tuple(s * self.itemsize for s in self.strides),
            data=self.buffer,
            offset=self.offset * self.itemsize,
        )

    # -- autograd-facing ----------------------------------------------------------------------
    def detach(self) -> Tensor:
        """The same memory, cut off from any gradient (and valid exactly as long as this one)."""
        t = Tensor(self.buffer, self.shape, self.dtype, self.device, self.strides, self.offset)
        t.expiry = self.expiry
        return t

    def requires_grad_(self, value: bool = True) -> Tensor:
        self.requires_grad = value
        return self

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self._host_copy("repr()"), separator=", ", threshold=20)
        return f"Tensor({body}, dtype={self.dtype}{grad})"

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __bool__(self) -> bool:
        return bool(self._scalar("bool() (a Python branch on a tensor's value)"))

    def __float__(self) -> float:
        return float(self._scalar("float()"))

    # Hash by identity, as PyTorch does, so tensors key dicts and sets; == is elementwise.
    __hash__ = object.__hash__

    # -- ops: each defers to netcl.core.tensor.ops ----------------------------------------------
    def __add__(self, other: Tensor | Scalar) -> Tensor:
        return ops.add(self, other)

    def __radd__(self, other: Scalar) -> Tensor:
        return ops.add(other, self)

    def __sub__(self, other: Tensor | Scalar) -> Tensor:
        return ops.sub(self, other)

    def __rsub__(self, other: Scalar) -> Tensor:
        return ops.sub(other, self)

    def __mul__(self, other: Tensor | Scalar) -> Tensor:
        return ops.mul(self, other)

    def __rmul__(self, other: Scalar) -> Tensor:
        return ops.mul(other, self)

    def __truediv__(self, other: Tensor | Scalar) -> Tensor:
        return ops.div(self, other)

    def __rtruediv__(self, other: Scalar) -> Tensor:
        return ops.div(other, self)

    def __pow__(self, other: Tensor | Scalar) -> Tensor:
        return ops.pow(self, other)

    def __rpow__(self, other: Scalar) -> Tensor:
        return ops.pow(other, self)

    def __neg__(self) -> Tensor:
        return ops.neg(self)

    def __matmul__(self, other: Tensor) -> Tensor:
        return ops.matmul(self, other)

    def __lt__(self, other: Tensor | Scalar) -> Tensor:
        return ops.lt(self, other)

    def __le__(self, other: Tensor | Scalar) -> Tensor:
        return ops.le(self, other)

    def __gt__(self, other: Tensor | Scalar) -> Tensor:
        return ops.gt(self, other)

    def __ge__(self, other: Tensor | Scalar) -> Tensor:
        return ops.ge(self, other)

    def __eq__(self, other: object) -> Tensor:  # type: ignore[override]
        if not isinstance(other, Tensor | float | int | bool):
            return NotImplemented
        return ops.eq(self, other)

    def __ne__(self, other: object) -> Tensor:  # type: ignore[override]
        if not isinstance(other, Tensor | float | int | bool):
            return NotImplemented
        return ops.ne(self, other)

    def __getitem__(self, index: Any) -> Tensor:
        return ops.getitem(self, index)

    def exp(self) -> Tensor:
        return ops.exp(self)

    def log(self) -> Tensor:
        return ops.log(self)

    def sqrt(self) -> Tensor:
        return ops.sqrt(self)

    def relu(self) -> Tensor:
        return ops.relu(self)

    def sigmoid(self) -> Tensor:
        return ops.sigmoid(self)

    def tanh(self) -> Tensor:
        return ops.tanh(self)

    # The reductions take numpy's axis/keepdims and PyTorch's dim/keepdim, one meaning.
    def sum(self, axis: Axes = None, keepdims: bool = False, *, dim: Axes = None,
            keepdim: bool | None = None) -> Tensor:
        return ops.sum(self, _axis("sum", axis, dim), _keep("sum", keepdims, keepdim))

    def mean(self, axis: Axes = None, keepdims: bool = False, *, dim: Axes = None,
             keepdim: bool | None = None) -> Tensor:
        return ops.mean(self, _axis("mean", axis, dim), _keep("mean", keepdims, keepdim))

    @overload
    def max(self, axis: Axes = None, keepdims: bool = False) -> Tensor: ...

    @overload
    def max(self, axis: None = None, keepdims: bool = False, *, dim: int,
            keepdim: bool | None = None) -> ValuesIndices: ...

    def max(self, axis: Axes = None, keepdims: bool = False, *, dim: int | None = None,
            keepdim: bool | None = None) -> Tensor | ValuesIndices:
        """The max over ``axis`` (numpy's spelling: a tensor); with PyTorch's ``dim`` the
        (values, indices) pair ``torch.max(x, dim)`` returns."""
        return self._extremum("max", ops.max, ops.argmax, axis, keepdims, dim, keepdim)

    @overload
    def min(self, axis: Axes = None, keepdims: bool = False) -> Tensor: ...

    @overload
    def min(self, axis: None = None, keepdims: bool = False, *, dim: int,
            keepdim: bool | None = None) -> ValuesIndices: ...

    def min(self, axis: Axes = None, keepdims: bool = False, *, dim: int | None = None,
            keepdim: bool | None = None) -> Tensor | ValuesIndices:
        """As :meth:`max`, for the min."""
        return self._extremum("min", ops.min, ops.argmin, axis, keepdims, dim, keepdim)

    def _extremum(self, op: str, values: Any, where: Any, axis: Axes, keepdims: bool,
                  dim: int | None, keepdim: bool | None) -> Tensor | ValuesIndices:
        keep = _keep(op, keepdims, keepdim)
        if dim is None:
            result: Tensor = values(self, axis, keep)
            return result
        _axis(op, axis, dim)
        return ValuesIndices(values(self, dim, keep), where(self, dim, keep))

    def argmax(self, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None,
               keepdim: bool | None = None) -> Tensor:
        return ops.argmax(self, _axis("argmax", axis, dim), _keep("argmax", keepdims, keepdim))

    def logsumexp(self, axis: Axes = None, keepdims: bool = False, *, dim: Axes = None,
                  keepdim: bool | None = None) -> Tensor:
        return ops.logsumexp(self, _axis("logsumexp", axis, dim),
                             _keep("logsumexp", keepdims, keepdim))

    def softmax(self, dim: int = -1) -> Tensor:
        """exp(x - logsumexp(x)) along ``dim``, as ``torch.Tensor.softmax``."""
        return ops.exp(ops.sub(self, ops.logsumexp(self, dim, keepdims=True)))

    def squeeze(self, dim: int | Sequence[int] | None = None) -> Tensor:
        return ops.squeeze(self, dim)

    def unsqueeze(self, dim: int) -> Tensor:
        return ops.unsqueeze(self, dim)

    def tril(self, diagonal: int = 0) -> Tensor:
        return ops.tril(self, diagonal)

    def triu(self, diagonal: int = 0) -> Tensor:
        return ops.triu(self, diagonal)

    def masked_fill(self, mask: Tensor, value: Scalar) -> Tensor:
        return ops.masked_fill(self, mask, value)

    def where(self, condition: Tensor, other: Tensor | Scalar) -> Tensor:
        """``self`` where ``condition`` holds, else ``other`` (``torch.Tensor.where``)."""
        return ops.where(condition, self, other)

    def split(self, split_size_or_sections: int | Sequence[int], dim: int = 0) -> list[Tensor]:
        return ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks: int, dim: int = 0) -> list[Tensor]:
        return ops.chunk(self, chunks, dim)

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        return ops.reshape(self, _shape_args(shape))

    def view(self, *shape: int | Sequence[int]) -> Tensor:
        return ops.view(self, _shape_args(shape))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return ops.transpose(self, dim0, dim1)

    def permute(self, *dims: int | Sequence[int]) -> Tensor:
        return ops.permute(self, _shape_args(dims))

    def expand(self, *shape: int | Sequence[int]) -> Tensor:
        return ops.expand(self, _shape_args(shape))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return ops.flatten(self, start_dim, end_dim)

    def contiguous(self) -> Tensor:
        return self if self.is_contiguous else ops.copy(self)

    def clone(self) -> Tensor:
        return ops.copy(self)

    def astype(self, dtype: dtypes.DTypeLike) -> Tensor:
        return ops.cast(self, dtype)

    def add_(self, other: Tensor | Scalar, alpha: Scalar = 1) -> Tensor:
        return ops.add_(self, other, alpha)

    def mul_(self, other: Tensor | Scalar) -> Tensor:
        return ops.mul_(self, other)

    def copy_(self, source: Tensor) -> Tensor:
        return ops.copy_(self, source)

    def fill_(self, value: Scalar) -> Tensor:
        return ops.fill_(self, value)

    def zero_(self) -> Tensor:
        return ops.fill_(self, 0)

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        """Pickle and deepcopy through host memory (see ``netcl.core.tensor.pickling``)."""
        return Tensor.reducer(self)


class Parameter(Tensor):
    """A leaf tensor that a module trains: ``requires_grad`` is True by default."""

    def __init__(self, data: Tensor, requires_grad: bool = True) -> None:
        super().__init__(
            data.buffer,
            data.shape,
            data.dtype,
            data.device,
            data.strides,
            data.offset,
            requires_grad=requires_grad,
        )

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__().removeprefix("Tensor(")


def _fits(value: Tensor, like: Tensor) -> bool:
    """Whether ``value`` can be stored where ``like`` lives: same shape, dtype, device."""
    return value.shape == like.shape and value.dtype == like.dtype and value.device is like.device


def as_shape(shape: int | Sequence[int]) -> Shape:
    """``shape`` (one int or a sequence of them) as a tuple; a TypeError names a dimension
    that is not an integer, where ``int()`` would have truncated 3.7 to 3."""
    dims = (shape,) if hasattr(shape, "__index__") else tuple(shape)
    try:
        return tuple(operator.index(d) for d in dims)
    except TypeError:
        bad = next(d for d in dims if not hasattr(d, "__index__"))
        raise TypeError(
            f"shape {shape!r}: dimension {bad!r} is a {type(bad).__name__}, not an integer"
        ) from None


def type_name(value: object) -> str:
    """``value``'s type as a user would look it up: ``torch.Tensor``, ``numpy.ndarray``."""
    kind = type(value)
    root = kind.__module__.split(".")[0]
    return kind.__qualname__ if root == "builtins" else f"{root}.{kind.__qualname__}"


def _shape_args(args: tuple[int | Sequence[int], ...]) -> Shape:
    """Accept both ``t.reshape(2, 3)`` and ``t.reshape((2, 3))``."""
    return as_shape(args[0] if len(args) == 1 else cast(Sequence[int], args))


# Imported last: the ops build Tensors, and Tensor's methods call the ops.
from netcl.core.tensor import ops  # noqa: E402


def _axis(op: str, axis: Any, dim: Any) -> Any:
    """The axis given as numpy's ``axis`` or PyTorch's ``dim`` (not both)."""
    if dim is None:
        return axis
    if axis is not None:
        raise TypeError(f"{op}: got both axis={axis!r} and dim={dim!r}; they are one argument")
    return dim


def _keep(op: str, keepdims: bool, keepdim: bool | None) -> bool:
    """``keepdims`` or PyTorch's ``keepdim`` (not both)."""
    if keepdim is None:
        return keepdims
    if keepdims:
        raise TypeError(f"{op}: got both keepdims and keepdim; they are one argument")
    return keepdim


class ValuesIndices(NamedTuple):
    """What ``Tensor.max(dim=...)``/``min(dim=...)`` return, as ``torch.return_types.max``."""

    values: Tensor
    indices: Tensor
