"""Module: the base of every layer; registers parameters and submodules by assignment."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, NamedTuple, Self, TypeVar

import numpy as np

from netcl.autograd import no_grad
from netcl.core.tensor import Parameter, Tensor, from_numpy
from netcl.core.tensor.replay_state import grads_restorer, tensor_guard
from netcl.core.tensor.tensor import type_name

# What a registry walked by ``_named_members`` holds: parameters or buffers.
_Member = TypeVar("_Member", bound=Tensor)


class StateDictError(ValueError):
    """``load_state_dict`` was given keys or shapes that do not fit the module."""


class LoadResult(NamedTuple):
    """Keys the module has but the state lacked, and keys the state had but the module lacks."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _foreign_tensor(value: object) -> bool:
    """Another framework's tensor (torch, jax, cupy...): array-like, neither netcl nor numpy."""
    if isinstance(value, (Tensor, np.ndarray)):
        return False
    return hasattr(value, "__dlpack__") or hasattr(value, "__array__")


def _forward_unimplemented(self: Module, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(f"{type(self).__name__} does not define forward()")


class Module:
    """A piece of a model: parameters, buffers and submodules, and a ``forward``.

    Assigning a ``Parameter`` or a ``Module`` to an attribute registers it
    (in assignment order; one assigned again keeps its place, as in PyTorch),
    so ``parameters()``, ``named_parameters()``, ``state_dict()`` and
    ``train()``/``eval()`` reach it; ``register_buffer`` adds state that is
    saved but not trained. Registered objects are plain
    attributes too, so ``self.weight`` reads as it looks. Calling a module
    calls its ``forward``.

    ``state_dict()`` maps dotted names (``"0.weight"``) to numpy copies;
    ``load_state_dict`` checks every key and shape before it copies
    anything, so a bad state leaves the module unchanged.
    """

    # Declared as an attribute, as PyTorch does, so subclasses give forward
    # whatever signature they need.
    forward: Callable[..., Any] = _forward_unimplemented

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_persistent", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Tensor | None]
    _persistent: set[str]
    _modules: dict[str, Module | None]
    training: bool

    # -- registration --------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() ran; call super().__init__() "
                f"first in {type(self).__name__}.__init__"
            )
        if isinstance(value, Parameter):
            self._unregister(name, keep=self._parameters)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._unregister(name, keep=self._modules)
            self._modules[name] = value
        elif name in self._parameters:
            self._keep_slot(self._parameters, name, value, "parameter", "a Parameter")
        elif name in self._modules:
            self._keep_slot(self._modules, name, value, "submodule", "a Module")
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign {type(value).__name__} to buffer {name!r}: expected a Tensor"
                )
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def _keep_slot(self, registry: dict[str, Any], name: str, value: Any, kind: str,
                   expected: str) -> None:
        """A registered parameter or submodule's name takes None (the slot stays, empty, as
        a missing bias's) but no other kind of value: torch raises TypeError, where
        dropping the entry would silently take it out of ``state_dict()`` and training."""
        if value is not None:
            raise TypeError(
                f"cannot assign {type(value).__name__} to {kind} {name!r} of "
                f"{type(self).__name__}: expected {expected} or None"
            )
        registry[name] = None

    def __delattr__(self, name: str) -> None:
        self._unregister(name)
        object.__delattr__(self, name)

    def _unregister(self, name: str, keep: dict[str, Any] | None = None) -> None:
        """Forget ``name`` in every registry but ``keep``, the one it is about to be set in:
        there a replaced entry keeps its place, as in torch's, so ``model.fc = Linear(...)``
        leaves the order of ``parameters()`` and ``state_dict()`` as torch's."""
        registries: tuple[dict[str, Any], ...] = (self._parameters, self._buffers, self._modules)
        for registry in registries:
            if registry is not keep:
                registry.pop(name, None)
        self._persistent.discard(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (None: a slot that holds no parameter, like a missing bias)."""
        self._unregister(name, keep=self._parameters)
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register state that is not trained; ``persistent`` ones go into ``state_dict``."""
        self._unregister(name, keep=self._buffers)
        self._buffers[name] = tensor
        if persistent:
            self._persistent.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as ``name`` (torch's checks: a non-empty string without ".",
        not an attribute of another kind); a submodule already there keeps its place. None
        registers an empty slot, as torch's."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if not isinstance(name, str):
            raise TypeError(f"module name should be a string, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"module name must be non-empty and without '.', got {name!r}")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists in {type(self).__name__}")
        self._modules[name] = module
        object.__setattr__(self, name, module)

    # -- traversal -----------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Each direct submodule once (one registered twice under its first name); empty
        slots skipped."""
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every submodule once, depth first, with dotted names."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [
                (f"{name}.{child_name}" if name else child_name, child)
                for child_name, child in module._modules.items()
                if child is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path ``target`` ("" is this module), as torch's:
        AttributeError naming the module that lacks a step, or the step that is not a
        Module."""
        module = self
        for step in target.split(".") if target else []:
            child = getattr(module, step, None)
            if not isinstance(child, Module):
                what = "is not a Module" if hasattr(module, step) else "does not exist"
                raise AttributeError(
                    f"get_submodule({target!r}): {type(module).__name__} has no submodule "
                    f"{step!r} (the attribute {what})"
                )
            module = child
        return module

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target`` (``"0.weight"``), as torch's."""
        owner, _, name = target.rpartition(".")
        param = getattr(self.get_submodule(owner), name, None)
        if not isinstance(param, Parameter):
            raise AttributeError(f"get_parameter({target!r}): {name!r} is not a Parameter of "
                                 f"{type(self.get_submodule(owner)).__name__}")
        return param

    def _named_members(self, registry: Callable[[Module], dict[str, _Member | None]],
                       prefix: str, recurse: bool) -> Iterator[tuple[str, _Member]]:
        """Every entry of each module's ``registry`` once (a shared one under its first
        name), with dotted names; empty slots skipped."""
        seen: set[int] = set()
        owners = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for owner_name, module in owners:
            for name, member in registry(module).items():
                if member is None or id(member) in seen:
                    continue
                seen.add(id(member))
                yield (f"{owner_name}.{name}" if owner_name else name), member

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """Every parameter once (a shared one under its first name), with dotted names."""
        return self._named_members(lambda module: module._parameters, prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True
                      ) -> Iterator[tuple[str, Tensor]]:
        """Every buffer once (a shared one under its first name), with dotted names."""
        return self._named_members(lambda module: module._buffers, prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn: Callable[[Module], object]) -> Self:
        """Call ``fn`` on every submodule, children before their parent, then on this module
        (torch's order: ``model.apply(init_weights)``); returns this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes and calls -----------------------------------------------------------------------
    def train(self, mode: bool = True) -> Self:
        """Set training mode (Dropout drops) on this module and every submodule."""
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode must be a bool, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Self:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Self:
        """Set ``requires_grad`` on every parameter (``False`` freezes them); returns this
        module."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's ``.grad`` (``set_to_none``, torch's default) or fill it with
        zeros; a parameter without one keeps None either way, as torch's."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                with no_grad():
                    param.grad.zero_()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for i, arg in enumerate(args):
            if _foreign_tensor(arg):
                raise TypeError(
                    f"{type(self).__name__}: input {i} is a {type_name(arg)}; netcl modules "
                    "take netcl Tensors: convert with netcl.core.tensor.tensor(x.numpy())"
                )
        return self.forward(*args, **kwargs)

    # -- what netcl.jit checks -----------------------------------------------------------------
    def jit_guard(self) -> Hashable:
        """What a captured call (netcl.jit) assumes of this module: every submodule's
        ``training`` flag and every parameter's and buffer's memory, layout,
        ``requires_grad`` and gradient (see ``netcl.core.tensor.replay_state``)."""
        # Its own walk, not named_modules(): no dotted names, as this runs at every replay.
        parts: list[Hashable] = []
        seen: set[int] = set()
        stack: list[Module] = [self]
        while stack:
            module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            parts += (module.training, tuple(map(tensor_guard, module._parameters.values())),
                      tuple(map(tensor_guard, module._buffers.values())))
            stack += (child for child in module._modules.values() if child is not None)
        return tuple(parts)

    def jit_exit(self, entry: Hashable) -> Callable[[], None]:
        """What a replay does for this module after its launches: give every parameter the
        grad the captured call left it (a replay runs no Python that would set it)."""
        return grads_restorer(self.parameters())

    # -- state ---------------------------------------------------------------------------------
    def _state_tensors(self) -> dict[str, Tensor]:
        """Every saved tensor by dotted name: parameters, then persistent buffers, per module."""
        state: dict[str, Tensor] = {}
        for owner_name, module in self.named_modules():
            dotted = f"{owner_name}." if owner_name else ""
            for name, param in module._parameters.items():
                if param is not None:
                    state[dotted + name] = param
            for name, buffer in module._buffers.items():
                if buffer is not None and name in module._persistent:
                    state[dotted + name] = buffer
        return state

    def state_dict(self) -> dict[str, np.ndarray[Any, Any]]:
        """A host copy of every parameter and persistent buffer, by dotted name."""
        return {name: tensor.numpy() for name, tensor in self._state_tensors().items()}

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> LoadResult:
        """Copy ``state_dict``'s arrays (numpy arrays, Tensors, nested lists) into the module.

        Every entry is checked first: a shape that differs from the target's,
        or a value that cannot be cast to its dtype (same kind or safer), and
        with ``strict`` any missing or unexpected key, raise ``StateDictError``
        naming each key and both shapes, and nothing is copied. The copy goes
        into the existing tensors' memory, so views (an optimizer's flat
        buffer) stay valid.
        """
        targets = self._state_tensors()
        missing = [name for name in targets if name not in state_dict]
        unexpected = [name for name in state_dict if name not in targets]
        problems: list[str] = []
        if strict:
            problems += [f"missing key {name!r} (shape {targets[name].shape})" for name in missing]
            problems += [f"unexpected key {name!r}" for name in unexpected]
        staged: list[tuple[Tensor, np.ndarray[Any, Any]]] = []
        for name, target in targets.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if array.shape != target.shape:
                problems.append(
                    f"key {name!r}: the state has shape {array.shape}, "
                    f"the module expects {target.shape}"
                )
            elif not np.can_cast(array.dtype, target.dtype, casting="same_kind"):
                problems.append(
                    f"key {name!r}: cannot cast the state's {array.dtype} to the module's "
                    f"{target.dtype}"
                )
            else:
                staged.append((target, array.astype(target.dtype, copy=False)))
        if problems:
            raise StateDictError(
                f"load_state_dict into {type(self).__name__} failed, nothing was loaded:\n  "
                + "\n  ".join(problems)
            )
        with no_grad():
            for target, array in staged:
                target.copy_(from_numpy(array, target.device))
        return LoadResult(missing, unexpected)

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """What goes between the parentheses of this module's one-line repr."""
        return ""

    def __repr__(self) -> str:
        lines = [
            f"({name}): {child!r}".replace("\n", "\n  ") for name, child in self._modules.items()
        ]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
