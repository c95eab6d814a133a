"""The optimizer parity table and the side-by-side runner shared by the netcl-optim tests.

Each row of CASES is one optimizer configuration. ``Run`` builds it twice from the
same initial parameters, once in netcl and once in torch.optim (foreach=False: the
single-tensor reference path), and feeds both the same gradient sequence. A new
configuration is a new row.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import netcl.optim as no
from netcl.core.device import Device
from netcl.core.tensor import Parameter, Tensor, from_numpy

# A few small parameters: a vector, a matrix, one of 300, a 0-d scalar, and one
# that spans three CPU work-items (chunk 4096) with a tail shorter than a float8.
SHAPES: tuple[tuple[int, ...], ...] = ((3,), (7, 5), (300,), (), (2 * 4096 + 13,))
LATE_PARAM = 1  # with ``late``, this parameter has grad None until LATE_STEP
LATE_STEP = 20
CHECKPOINTS = (1, 10, 50, 200)

CLASSES: dict[str, type[no.Optimizer]] = {
    "Adam": no.Adam, "AdamW": no.AdamW, "SGD": no.SGD, "Momentum": no.Momentum,
    "RMSProp": no.RMSProp, "NAdam": no.NAdam, "RAdam": no.RAdam, "Adamax": no.Adamax,
    "Adagrad": no.Adagrad, "Adafactor": no.Adafactor,
}
# Algorithms that step each parameter on its own (no flat layout).
UNFUSED = {"Adafactor"}
# netcl's algorithms whose torch.optim twin has the same name and arguments.
SAME_IN_TORCH = {"NAdam": torch.optim.NAdam, "RAdam": torch.optim.RAdam,
                 "Adamax": torch.optim.Adamax, "Adagrad": torch.optim.Adagrad,
                 "Adafactor": torch.optim.Adafactor}


@dataclass(frozen=True)
class Case:
    """One configuration: netcl constructor kwargs, and how the run is set up."""

    id: str
    algorithm: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    groups: tuple[Mapping[str, Any], ...] = ()  # per-group overrides; () is one group
    late: bool = False
    dtype: str = "float32"
    steps: int = 200


def _case(id: str, algorithm: str, **kwargs: Any) -> Case:
    options = {k: kwargs.pop(k) for k in ("groups", "late", "dtype", "steps") if k in kwargs}
    return Case(id, algorithm, kwargs, **options)


CASES: tuple[Case, ...] = (
    _case("adam", "Adam"),
    _case("adam-lr", "Adam", lr=1e-2),
    _case("adam-wd", "Adam", lr=1e-2, weight_decay=0.1),
    _case("adam-amsgrad", "Adam", lr=1e-2, amsgrad=True),
    _case("adam-amsgrad-wd", "Adam", lr=1e-2, amsgrad=True, weight_decay=0.05),
    _case("adam-maximize", "Adam", lr=1e-2, maximize=True),
    _case("adam-maximize-amsgrad-wd", "Adam", maximize=True, amsgrad=True, weight_decay=0.1),
    _case("adam-betas-eps", "Adam", lr=1e-2, betas=(0.5, 0.9), eps=1e-6),
    _case("adam-beta1-zero", "Adam", lr=1e-2, betas=(0.0, 0.99)),
    _case("adam-groups", "Adam", lr=1e-2,
          groups=({}, {"lr": 3e-3, "weight_decay": 0.1, "amsgrad": True})),
    _case("adam-late", "Adam", lr=1e-2, late=True),
    _case("adam-fp16", "Adam", lr=1e-2, dtype="float16"),
    _case("adam-fp16-amsgrad-wd", "Adam", lr=1e-2, amsgrad=True, weight_decay=0.1,
          dtype="float16"),
    _case("adamw", "AdamW"),
    _case("adamw-wd", "AdamW", lr=1e-2, weight_decay=0.1),
    _case("adamw-no-wd", "AdamW", lr=1e-2, weight_decay=0.0),
    _case("adamw-amsgrad", "AdamW", lr=1e-2, amsgrad=True),
    _case("adamw-maximize", "AdamW", lr=1e-2, maximize=True, weight_decay=0.05),
    _case("adamw-groups", "AdamW", lr=1e-2, groups=({}, {"lr": 1e-3, "weight_decay": 0.5})),
    _case("adamw-late", "AdamW", lr=1e-2, late=True),
    _case("adamw-fp16", "AdamW", lr=1e-2, weight_decay=0.1, dtype="float16"),
    _case("sgd", "SGD", lr=1e-2),
    _case("sgd-wd", "SGD", lr=1e-2, weight_decay=0.1),
    _case("sgd-maximize", "SGD", lr=1e-2, maximize=True, weight_decay=0.01),
    _case("sgd-groups", "SGD", lr=1e-2, groups=({}, {"lr": 1e-1, "weight_decay": 0.1})),
    _case("sgd-fp16", "SGD", lr=1e-2, dtype="float16"),
    # SGD with momentum, by both names: Momentum (momentum 0.9 by default) and SGD.
    *(
        _case(f"{prefix}{id}", algorithm,
              **{**({"momentum": 0.9} if algorithm == "SGD" else {}), **kwargs})
        for prefix, algorithm in (("momentum", "Momentum"), ("sgd-momentum", "SGD"))
        for id, kwargs in (
            ("", {"lr": 1e-2}),
            ("-nesterov", {"lr": 1e-2, "nesterov": True}),
            ("-dampening", {"lr": 1e-2, "momentum": 0.5, "dampening": 0.5}),
            ("-wd", {"lr": 1e-2, "weight_decay": 0.1}),
            ("-maximize-nesterov-wd", {"lr": 1e-2, "maximize": True, "nesterov": True,
                                       "weight_decay": 0.05}),
            ("-zero", {"lr": 1e-2, "momentum": 0.0}),
            ("-groups", {"lr": 1e-2,
                         "groups": ({}, {"lr": 1e-3, "momentum": 0.5, "nesterov": True})}),
            ("-late", {"lr": 1e-2, "late": True}),
            ("-fp16", {"lr": 1e-2, "dtype": "float16"}),
        )
    ),
    _case("rmsprop", "RMSProp"),
    _case("rmsprop-centered", "RMSProp", lr=1e-3, centered=True),
    _case("rmsprop-momentum", "RMSProp", lr=1e-3, momentum=0.9),
    _case("rmsprop-centered-momentum", "RMSProp", lr=1e-3, centered=True, momentum=0.5),
    _case("rmsprop-wd", "RMSProp", lr=1e-3, weight_decay=0.1),
    _case("rmsprop-maximize", "RMSProp", lr=1e-3, maximize=True),
    _case("rmsprop-alpha-eps", "RMSProp", lr=1e-3, alpha=0.9, eps=1e-6),
    _case("rmsprop-groups", "RMSProp", lr=1e-3,
          groups=({}, {"lr": 1e-2, "centered": True, "momentum": 0.9})),
    _case("rmsprop-late", "RMSProp", lr=1e-3, late=True, momentum=0.5),
    _case("rmsprop-fp16", "RMSProp", lr=1e-3, dtype="float16"),
    _case("rmsprop-fp16-centered-momentum", "RMSProp", lr=1e-3, centered=True, momentum=0.5,
          dtype="float16"),
    _case("nadam", "NAdam"),
    _case("nadam-lr-wd", "NAdam", lr=1e-2, weight_decay=0.1),
    _case("nadam-decoupled", "NAdam", lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
    _case("nadam-maximize-momentum-decay", "NAdam", lr=1e-2, maximize=True,
          momentum_decay=0.01, betas=(0.8, 0.99), eps=1e-6),
    _case("nadam-groups", "NAdam", lr=1e-2,
          groups=({}, {"lr": 3e-3, "weight_decay": 0.1, "decoupled_weight_decay": True})),
    _case("nadam-late", "NAdam", lr=1e-2, late=True),
    _case("nadam-fp16", "NAdam", lr=1e-2, weight_decay=0.05, dtype="float16"),
    _case("radam", "RAdam"),
    _case("radam-lr-wd", "RAdam", lr=1e-2, weight_decay=0.1),
    _case("radam-decoupled", "RAdam", lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
    _case("radam-maximize-betas", "RAdam", lr=1e-2, maximize=True, betas=(0.5, 0.9), eps=1e-6),
    _case("radam-groups", "RAdam", lr=1e-2, groups=({}, {"lr": 1e-3, "weight_decay": 0.5})),
    _case("radam-late", "RAdam", lr=1e-2, late=True),
    _case("radam-fp16", "RAdam", lr=1e-2, dtype="float16"),
    _case("adamax", "Adamax"),
    _case("adamax-wd", "Adamax", lr=1e-2, weight_decay=0.1),
    _case("adamax-maximize-betas-eps", "Adamax", lr=1e-2, maximize=True, betas=(0.5, 0.9),
          eps=1e-3),
    _case("adamax-groups", "Adamax", groups=({}, {"lr": 1e-2, "weight_decay": 0.1})),
    _case("adamax-late", "Adamax", late=True),
    _case("adamax-fp16", "Adamax", lr=1e-2, dtype="float16"),
    _case("adagrad", "Adagrad"),
    _case("adagrad-lr-decay-wd", "Adagrad", lr_decay=0.01, weight_decay=0.1),
    _case("adagrad-initial-eps", "Adagrad", initial_accumulator_value=0.5, eps=1e-6),
    _case("adagrad-maximize", "Adagrad", lr=1e-3, maximize=True),
    _case("adagrad-groups", "Adagrad",
          groups=({}, {"lr": 1e-1, "lr_decay": 0.1})),
    _case("adagrad-late", "Adagrad", late=True, initial_accumulator_value=0.25),
    _case("adagrad-fp16", "Adagrad", dtype="float16"),
    _case("adafactor", "Adafactor"),
    _case("adafactor-lr-wd", "Adafactor", lr=1e-3, weight_decay=0.1),
    _case("adafactor-eps-d-decay", "Adafactor", eps=(1e-6, 1e-2), d=2.0, beta2_decay=-0.5),
    _case("adafactor-maximize", "Adafactor", maximize=True),
    _case("adafactor-groups", "Adafactor", groups=({}, {"lr": 1e-3, "weight_decay": 0.1})),
    _case("adafactor-late", "Adafactor", late=True),
    # torch's eps1 default is the parameter dtype's epsilon, and torch runs in float32 here.
    _case("adafactor-fp16", "Adafactor", eps=(1e-7, 1e-3), dtype="float16"),
)
BY_ID = {case.id: case for case in CASES}


def netcl_kwargs(case: Case) -> dict[str, Any]:
    """The case's kwargs with every netcl default filled in (torch gets the same values)."""
    signature = inspect.signature(CLASSES[case.algorithm])
    full = {
        name: p.default for name, p in signature.parameters.items()
        if p.default is not inspect.Parameter.empty
        and name not in ("allow_shared", "fused", "master_weights")
    }
    return {**full, **case.kwargs}


def torch_optimizer(case: Case, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """torch.optim's equivalent of the case over ``groups`` (its single-tensor path)."""
    kwargs = netcl_kwargs(case)
    if case.algorithm in SAME_IN_TORCH:
        return SAME_IN_TORCH[case.algorithm](groups, **kwargs, foreach=False)
    if case.algorithm == "Adam":
        return torch.optim.Adam(groups, **kwargs, foreach=False)
    if case.algorithm == "AdamW":
        return torch.optim.AdamW(groups, **kwargs, foreach=False)
    if case.algorithm in ("SGD", "Momentum"):
        return torch.optim.SGD(groups, **kwargs, foreach=False)
    return torch.optim.RMSprop(groups, **kwargs, foreach=False)


def split(params: Sequence[Any], case: Case) -> list[dict[str, Any]]:
    """Parameters dealt round-robin into the case's groups, with their overrides."""
    overrides = case.groups or ({},)
    return [
        {"params": list(params[g::len(overrides)]), **override}
        for g, override in enumerate(overrides)
    ]


def initial_params(case: Case, seed: int = 0) -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(case.dtype) for shape in SHAPES]


def gradients(case: Case, seed: int = 1) -> Iterator[list[np.ndarray[Any, Any] | None]]:
    """The gradient of every parameter at each step (None: no grad yet)."""
    rng = np.random.default_rng(seed)
    step = 0
    while True:
        step += 1
        grads: list[np.ndarray[Any, Any] | None] = [
            rng.standard_normal(shape).astype(case.dtype) for shape in SHAPES
        ]
        if case.late and step < LATE_STEP:
            grads[LATE_PARAM] = None
        yield grads


class Run:
    """One case run side by side: netcl and torch, from the same parameters and grads."""

    def __init__(
        self,
        case: Case,
        device: Device | None = None,
        start: Sequence[np.ndarray[Any, Any]] | None = None,
    ) -> None:
        self.case = case
        self.half = case.dtype == "float16"
        values = list(start) if start is not None else initial_params(case)
        self.params: list[Tensor] = [
            Parameter(from_numpy(np.asarray(v, dtype=case.dtype), device)) for v in values
        ]
        # torch runs in float32 on the exact values netcl holds (fp16 upcast when half).
        self.torch_params = [
            torch.tensor(np.asarray(v, dtype=case.dtype).astype(np.float32), requires_grad=True)
            for v in values
        ]
        self.optimizer = CLASSES[case.algorithm](split(self.params, case), **case.kwargs)
        self.torch_optimizer = torch_optimizer(case, split(self.torch_params, case))

    def step(self, grads: Sequence[np.ndarray[Any, Any] | None], netcl: bool = True,
             torch_side: bool = True) -> None:
        for p, tp, g in zip(self.params, self.torch_params, grads, strict=True):
            p.grad = None if g is None else from_numpy(g, p.device)
            tp.grad = None if g is None else torch.from_numpy(g.astype(np.float32))
        if netcl:
            self.optimizer.step()
        if torch_side:
            # fp16: netcl steps a float32 master and stores it rounded, so torch's float32
            # run is its reference, rounded only where compared (assert_params_close);
            # Adafactor keeps no master and rounds every step, so its reference does too.
            self.torch_optimizer.step()
            if not self.optimizer.master_weights:
                self.round_torch_params()

    def round_torch_params(self) -> None:
        """Round torch's float32 parameters to fp16 (when half): the values a state dict
        without masters hands over."""
        if self.half:
            with torch.no_grad():
                for tp in self.torch_params:
                    tp.copy_(tp.half().float())

    def netcl_values(self) -> list[np.ndarray[Any, Any]]:
        return [p.numpy() for p in self.params]

    def torch_values(self) -> list[np.ndarray[Any, Any]]:
        return [tp.detach().numpy().copy() for tp in self.torch_params]

    def assert_close(self, when: str) -> None:
        assert_params_close(self.netcl_values(), self.torch_values(), self.half, when)


def assert_params_close(
    ours: Sequence[np.ndarray[Any, Any]], theirs: Sequence[np.ndarray[Any, Any]], half: bool,
    when: str,
) -> None:
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.shape == b.shape, f"param {i} {when}: shape {a.shape} vs torch {b.shape}"
        if not half:
            # fp32: the same formulas in the same order; what differs is rounding inside an
            # op (OpenCL may fuse a*b+c into one fma, torch's sqrt is not always the
            # correctly rounded one), about 1 ulp per op. Over 200 steps that stays
            # well under 1e-5 relative. atol covers parameters passing near 0, where
            # relative error means nothing: there it is ~200 steps x 1 ulp of an lr-sized step.
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"param {i} {when}")
            continue
        # fp16: both sides step fp32 values (netcl its masters) and netcl rounds each to
        # fp16 as it stores it; theirs are rounded here, so most elements are bit-equal.
        # Where the two fp32 values (a few fp32 ulps apart) straddle a rounding boundary
        # they round one fp16 ulp apart; the atol of two fp16 ulps at the parameter's
        # largest magnitude bounds that, and nearly every element must be exactly equal.
        a32 = a.astype(np.float32)
        b16 = b.astype(np.float16).astype(np.float32)
        largest = np.float16(np.abs(b16).max()) if b.size else np.float16(1)
        atol = 2 * float(np.spacing(largest))
        np.testing.assert_allclose(a32, b16, rtol=0, atol=atol, err_msg=f"param {i} {when}")
        equal = np.mean(a32 == b16) if a.size else 1.0
        assert equal >= 0.98, f"param {i} {when}: only {equal:.1%} of elements equal torch's"


def to_torch_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A netcl state dict as torch.optim loads it: arrays and steps become tensors.

    (torch's loader copies any iterable it meets element by element, which numpy
    arrays do not survive; group keys netcl does not have take torch's defaults in
    its ``__setstate__``.)
    """
    state = {
        index: {
            key: torch.from_numpy(np.array(value)) if isinstance(value, np.ndarray)
            else torch.tensor(value, dtype=torch.float32)  # step, NAdam's mu_product
            for key, value in entry.items()
        }
        for index, entry in state_dict["state"].items()
    }
    return {"state": state, "param_groups": [dict(group) for group in state_dict["param_groups"]]}


def assert_state_matches_torch(netcl_sd: Mapping[str, Any], torch_sd: Mapping[str, Any],
                               half: bool) -> None:
    """Same layout (indices, keys, group hyperparameters) and close values. netcl's fp16
    parameters have a float32 ``master_param`` more (torch keeps none), checked apart."""
    ours, theirs = {}, torch_sd["state"]
    for index, entry in netcl_sd["state"].items():
        master = entry.get("master_param")
        assert master is None or half, f"state[{index}]: a master only for fp16"
        if master is not None:
            assert master.dtype == np.float32 and master.shape == entry.get("exp_avg", master).shape
        rest = {key: value for key, value in entry.items() if key != "master_param"}
        if rest:  # plain SGD keeps nothing else
            ours[index] = rest
    assert sorted(ours) == sorted(theirs)
    for index in ours:
        assert list(ours[index]) == list(theirs[index]), f"state[{index}] keys"
        for key, value in ours[index].items():
            expected = theirs[index][key]
            if not isinstance(value, np.ndarray):  # step, NAdam's mu_product: the same float
                assert isinstance(value, float) and value == float(expected), f"{index} {key}"
                continue
            assert value.dtype == np.float32, "netcl state is always float32"
            if not half:
                np.testing.assert_allclose(value, expected.numpy(), rtol=1e-4, atol=1e-6,
                                           err_msg=f"state[{index}][{key}]")
    for ours_group, theirs_group in zip(netcl_sd["param_groups"], torch_sd["param_groups"],
                                        strict=True):
        for key, value in ours_group.items():
            assert key in theirs_group, f"group key {key} is not torch's"
            assert value == theirs_group[key], f"group {key}: {value} vs torch {theirs_group[key]}"


class KernelNames:
    """A launch observer (``netcl.core.tensor.launch.observing``) that keeps the name of
    every kernel launched, in order; host reads, uploads and effects are no launches."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def launched(self, device: Any, kernel: Any, *args: Any) -> None:
        self.names.append(kernel.function_name)

    def host_read(self, what: str) -> None: ...

    def host_upload(self, what: str) -> None: ...

    def host_effect(self, effect: Any) -> None: ...
