"""Containers: Sequential chains modules; ModuleList and ModuleDict hold them for a custom
forward."""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, TypeAlias

from netcl.nn.module import Module

# What ModuleDict takes: a mapping (another ModuleDict too) or (key, module) pairs.
NamedModules: TypeAlias = "Mapping[str, Module] | ModuleDict | Iterable[tuple[str, Module]]"


class Sequential(Module):
    """Modules called in order, each on the previous one's output.

    Submodules are registered as "0", "1", ..., so their parameters are
    named "0.weight", "0.bias", ... in ``state_dict``, as in PyTorch.
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential holds Modules, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index: int) -> Module:
        modules = list(self._modules.values())
        return modules[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


class ModuleList(Module):
    """A list of modules whose parameters are registered ("0", "1", ...); no forward."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


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
