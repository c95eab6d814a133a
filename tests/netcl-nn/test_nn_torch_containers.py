"""Sequential's and ModuleList's list API, and assignment to a registered name, each run on
netcl and on torch side by side: the same operations must leave the same registry."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
import torch

import netcl.core.tensor as nt
import netcl.nn as nn

TNN = torch.nn
SIZE = 4  # modules in each container at the start; SIZE + 3 more to add


def linears(torch_side: bool) -> list[Any]:
    """Linear(1, i + 1) for each i: a module is told apart by its weight's shape."""
    if torch_side:
        return [TNN.Linear(1, i + 1) for i in range(SIZE + 3)]
    return [nn.Linear(None, 1, i + 1) for i in range(SIZE + 3)]


def build(kind: str, modules: list[Any], torch_side: bool) -> Any:
    lib: Any = TNN if torch_side else nn
    return lib.ModuleList(modules) if kind == "ModuleList" else lib.Sequential(*modules)


def registry(container: Any) -> list[tuple[str, tuple[int, ...]]]:
    """(key, weight shape) a module, in order; on netcl's side also checks that each key
    reads the same module as an attribute and through indexing."""
    if isinstance(container, nn.Module):
        for i, (key, module) in enumerate(container.named_children()):
            assert getattr(container, key) is module is container[i], key
    return [(name, tuple(p.shape)) for name, p in container.named_parameters()
            if name.endswith("weight")]


def do(*_: Any) -> None:
    """Run the steps given as its arguments, left to right; compare nothing they return."""


# (id, operation on a container and the unused modules m[SIZE:], the kinds it skips); a
# list or tuple it returns is compared too (a popped module's, a slice's, a sum's registry).
# torch's ModuleList.insert takes no negative index (its shifting loop reads key "-1").
Op = Callable[[Any, list[Any]], Any]
OPS: list[tuple[str, Op, tuple[str, ...]]] = [
    ("setitem", lambda c, m: c.__setitem__(1, m[0]), ()),
    ("setitem_negative", lambda c, m: c.__setitem__(-1, m[0]), ()),
    ("delitem", lambda c, m: c.__delitem__(1), ()),
    ("delitem_negative", lambda c, m: c.__delitem__(-2), ()),
    ("delitem_slice", lambda c, m: c.__delitem__(slice(0, 3, 2)), ()),
    ("append_extend", lambda c, m: do(c.append(m[0]).extend(m[1:])), ()),
    ("insert", lambda c, m: do(c.insert(0, m[0]), c.insert(2, m[1]), c.insert(len(c), m[2])),
     ()),
    ("insert_negative", lambda c, m: do(c.insert(-1, m[0]), c.insert(-len(c), m[1])),
     ("ModuleList",)),
    ("pop", lambda c, m: registry(c.pop(1)), ()),
    ("slice", lambda c, m: registry(c[1:3]), ()),
    ("slice_step", lambda c, m: (type(c[::-2]).__name__, registry(c[::-2])), ()),
    ("add", lambda c, m: registry(c + c[:1]), ()),
    ("iadd", lambda c, m: registry(c.__iadd__(c[2:])), ()),
    ("delete_then_append", lambda c, m: do(c.__delitem__(0), c.append(m[0])), ()),
]


@pytest.mark.parametrize("kind", ["Sequential", "ModuleList"])
@pytest.mark.parametrize(("op", "skip"), [row[1:] for row in OPS], ids=[row[0] for row in OPS])
def test_list_api_leaves_torch_s_registry(kind: str, op: Op, skip: tuple[str, ...]) -> None:
    if kind in skip:
        pytest.skip(f"torch's {kind} does not do this")
    sides = []
    for torch_side in (False, True):
        modules = linears(torch_side)
        container = build(kind, modules[:SIZE], torch_side)
        returned = op(container, modules[SIZE:])
        sides.append((registry(container), returned))
    assert sides[0] == sides[1]


def test_sequential_takes_torch_s_ordered_dict_and_a_slice_keeps_its_keys() -> None:
    def make(lib: Any, torch_side: bool) -> Any:
        m = linears(torch_side)
        return lib.Sequential(OrderedDict([("conv1", m[0]), ("act", m[1]), ("fc", m[2])]))

    ours, theirs = make(nn, False), make(TNN, True)
    assert registry(ours) == registry(theirs)
    assert registry(ours[1:]) == registry(theirs[1:])  # "act.weight", "fc.weight"
    assert ours.fc is ours[2]  # type: ignore[attr-defined]
    del ours[0]
    del theirs[0]
    assert registry(ours) == registry(theirs)  # renumbered "0", "1", as torch does
    ours.load_state_dict(theirs.state_dict())


@pytest.mark.parametrize("kind", ["Sequential", "ModuleList"])
def test_list_api_refuses_as_torch_does(kind: str) -> None:
    ours = build(kind, linears(False)[:2], False)
    with pytest.raises(IndexError, match=rf"{kind} index 2 is out of range for 2 modules"):
        ours[2] = nn.ReLU()
    with pytest.raises(IndexError, match=rf"{kind} index -3 is out of range"):
        del ours[-3]
    with pytest.raises(IndexError, match=r"insert: index 3 is out of range for 2 modules"):
        ours.insert(3, nn.ReLU())
    with pytest.raises(TypeError, match=rf"cannot assign int to submodule '0' of {kind}: "
                       "expected a Module or None"):
        ours[0] = 3
    with pytest.raises(TypeError, match=rf"{kind}.extend takes an iterable of Modules, got int"):
        ours.extend(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"{kind} holds Modules, got str"):
        ours.append("relu")  # type: ignore[arg-type]
    assert [name for name, _ in ours.named_parameters()] == ["0.weight", "0.bias", "1.weight",
                                                             "1.bias"]  # all unchanged
    assert len(nn.ModuleList(None)) == len(TNN.ModuleList(None)) == 0


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(None, 2, 3)
        self.scale = nt.Parameter(nt.ones(3))
        self.head = nn.Linear(None, 3, 1)


class TorchNet(TNN.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = TNN.Linear(2, 3)
        self.scale = TNN.Parameter(torch.ones(3))
        self.head = TNN.Linear(3, 1)


@pytest.mark.parametrize(("name", "wrong"), [("body", 3), ("body", nt.ones(2)),
                                             ("scale", nt.ones(3)), ("scale", 1.0)])
def test_a_wrong_value_for_a_registered_name_raises_and_keeps_it(name: str, wrong: Any) -> None:
    ours, theirs = Net(), TorchNet()
    kind, expected = ("submodule", "a Module") if name == "body" else ("parameter",
                                                                       "a Parameter")
    with pytest.raises(TypeError, match=rf"cannot assign {type(wrong).__name__} to {kind} "
                       rf"'{name}' of Net: expected {expected} or None"):
        setattr(ours, name, wrong)
    torch_wrong = torch.ones(2) if isinstance(wrong, nt.Tensor) else wrong
    with pytest.raises(TypeError):
        setattr(theirs, name, torch_wrong)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert getattr(ours, name) is not wrong


def test_none_keeps_the_slot_and_the_next_value_takes_its_place() -> None:
    ours, theirs = Net(), TorchNet()
    for net in (ours, theirs):
        net.body = None
        net.scale = None
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["head.weight", "head.bias"]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert ours.body is None and "(body): None" in repr(ours)
    ours.train(False)  # every walk skips the empty slot: modes, netcl.jit's guard, apply
    hash(ours.jit_guard())
    ours.apply(lambda module: module.extra_repr())
    ours.body = nn.Linear(None, 2, 3)
    ours.scale = nt.Parameter(nt.ones(3))
    theirs.body = TNN.Linear(2, 3)
    theirs.scale = TNN.Parameter(torch.ones(3))
    assert list(ours.state_dict()) == list(theirs.state_dict())  # back in their old places
    ours.load_state_dict(theirs.state_dict())
