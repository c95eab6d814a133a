"""Containers: Sequential chains modules; ModuleList and ModuleDict hold them for a custom
forward."""

from __future__ import annotations

import operator
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, Self, TypeAlias, overload

from netcl.nn.module import Module

# What ModuleDict takes: a mapping (another ModuleDict too) or (key, module) pairs.
NamedModules: TypeAlias = "Mapping[str, Module] | ModuleDict | Iterable[tuple[str, Module]]"


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: a list's API over their modules, as torch's.

    ``m[i]`` (negative too; a slice gives the same class), ``m[i] = module`` (replaces in
    place, under the same key), ``del m[i]`` / ``del m[a:b]`` and ``pop`` (the rest are
    renumbered "0", "1", ...), ``append``, ``extend``, ``insert``, ``+``, ``+=``, ``len``,
    ``iter``. An index out of range raises IndexError, a value that is not a Module
    TypeError.
    """

    _modules: dict[str, Module]  # type: ignore[assignment]  # a slot may hold None, as torch's

    def _key(self, index: int) -> str:
        size = len(self._modules)
        index = operator.index(index)
        if not -size <= index < size:
            raise IndexError(
                f"{type(self).__name__} index {index} is out of range for {size} modules"
            )
        return list(self._modules)[index]

    def _of(self, modules: list[tuple[str, Module]]) -> Self:
        """A new container of this class holding ``modules`` (a slice or a sum)."""
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Module: ...

    @overload
    def __getitem__(self, index: slice) -> Self: ...

    def __getitem__(self, index: int | slice) -> Module | Self:
        if isinstance(index, slice):
            return self._of(list(self._modules.items())[index])
        return self._modules[self._key(index)]

    def __setitem__(self, index: int, module: Module) -> None:
        setattr(self, self._key(index), module)

    def __delitem__(self, index: int | slice) -> None:
        keys = list(self._modules)[index] if isinstance(index, slice) else [self._key(index)]
        for key in keys:
            delattr(self, key)
        self._renumber(list(self._modules.values()))

    def _renumber(self, modules: list[Module]) -> None:
        """Hold ``modules`` under "0", "1", ... (torch renumbers after a deletion)."""
        for key in list(self._modules):
            delattr(self, key)
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> Self:
        self.add_module(str(len(self._modules)), _checked(self, module))
        return self

    def extend(self, modules: Iterable[Module]) -> Self:
        if not isinstance(modules, Iterable):
            raise TypeError(
                f"{type(self).__name__}.extend takes an iterable of Modules, got "
                f"{type(modules).__name__}"
            )
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> Self:
        """Put ``module`` before position ``index`` (-len to len, as torch's Sequential)."""
        size = len(self._modules)
        if not -size <= index <= size:
            raise IndexError(f"{type(self).__name__}.insert: index {index} is out of range "
                             f"for {size} modules (-{size} to {size})")
        modules = list(self._modules.values())
        modules.insert(index, _checked(self, module))
        self._renumber(modules)
        return self

    def pop(self, index: int | slice = -1) -> Module:
        popped = self[index]
        del self[index]
        return popped

    def __add__(self, other: Iterable[Module]) -> Self:
        return self._of([]).extend(self).extend(other)

    def __iadd__(self, other: Iterable[Module]) -> Self:
        return self.extend(other)


def _checked(container: Module, module: object) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{type(container).__name__} holds Modules, got {type(module).__name__}")
    return module


class Sequential(_ModuleSequence):
    """Modules called in order, each on the previous one's output.

    Submodules are registered as "0", "1", ..., so their parameters are
    named "0.weight", "0.bias", ... in ``state_dict``, as in PyTorch; or under the
    keys of one mapping (torch's ``Sequential(OrderedDict([("conv1", ...), ...]))``),
    which a slice keeps. A list's API as ``ModuleList``'s (see ``_ModuleSequence``).

    >>> from netcl.nn import Identity, ReLU
    >>> model = Sequential(Identity(), ReLU())
    >>> model[0] = ReLU()
    >>> model
    Sequential(
      (0): ReLU()
      (1): ReLU()
    )
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        first = modules[0] if len(modules) == 1 else None
        if isinstance(first, Mapping):
            for key, module in first.items():
                self.add_module(key, _checked(self, module))
            return
        for layer in modules:
            self.append(layer)  # type: ignore[arg-type]  # a mapping among several: refused

    def _of(self, modules: list[tuple[str, Module]]) -> Self:
        return type(self)(dict(modules))

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x


class ModuleList(_ModuleSequence):
    """A list of modules whose parameters are registered ("0", "1", ...); no forward.
    A list's API, as torch's (see ``_ModuleSequence``); a slice is renumbered from "0"."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _of(self, modules: list[tuple[str, Module]]) -> Self:
        return type(self)(module for _, module in modules)


class ModuleDict(Module):
    """Modules by name, registered under it: in ``state_dict`` a parameter is
    ``"key.weight"`` (``"prefix.key.weight"`` inside a model), as in PyTorch. No forward.

    A dict's API, in insertion order: ``d[key]``, ``d[key] = module``, ``del d[key]``,
    ``len``, ``iter`` (the keys), ``in``, ``keys()``, ``items()``, ``values()``,
    ``update()``, ``pop()``, ``clear()``; ``d.key`` reads a module too. A key must be a
    name ``add_module`` takes (no ".", not a Module attribute such as "train").

    >>> from netcl.nn import Identity
    >>> heads = ModuleDict({"cls": Identity()})
    >>> heads["box"] = Identity()
    >>> list(heads), "cls" in heads
    (['cls', 'box'], True)
    """

    _modules: dict[str, Module]  # type: ignore[assignment]  # a slot may hold None, as torch's

    def __init__(self, modules: NamedModules | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        if key not in self._modules:
            raise KeyError(key)
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> KeysView[str]:
        return self._modules.keys()

    def items(self) -> ItemsView[str, Module]:
        return self._modules.items()

    def values(self) -> ValuesView[Module]:
        return self._modules.values()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            del self[key]

    def update(self, modules: NamedModules) -> None:
        """Add or replace each (key, module) of a mapping (a ModuleDict too), or of an
        iterable of pairs, in its order."""
        pairs = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for i, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(
                    f"ModuleDict.update: element #{i} has length {len(pair)}; 2 is required"
                )
            self[pair[0]] = pair[1]
