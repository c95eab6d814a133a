"""netcl.optim.lr_scheduler against torch.optim.lr_scheduler, step for step.

Every row of CASES builds the same schedule twice, through the same code: once with netcl's
module on a bare stand-in holding ``param_groups`` and once with torch's module on a real torch
optimizer. Both are stepped identically and every lr (and momentum / betas) must agree.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
import torch.optim.lr_scheduler as tls

import netcl.optim.lr_scheduler as nls
from netcl.optim.lr_scheduler import (
    ChainedScheduler,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

# torch deprecates step(epoch); the closed forms it selects are still what we compare against.
pytestmark = pytest.mark.filterwarnings("ignore:The epoch parameter:UserWarning")

LRS = (0.1, 0.05)
STEPS = 60
EXTRA: dict[str, dict[str, Any]] = {"sgd": {"momentum": 0.9}, "adam": {"betas": (0.9, 0.999)}}


class StandIn:
    """The least an optimizer must offer the schedulers: param_groups."""

    def __init__(self, kind: str = "sgd") -> None:
        self.param_groups: list[dict[str, Any]] = [{"lr": lr, **EXTRA[kind]} for lr in LRS]


def torch_optimizer(kind: str) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in LRS]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=LRS[0], momentum=0.9)
    return torch.optim.Adam(groups, lr=LRS[0], betas=(0.9, 0.999))


def snapshot(opt: Any) -> list[float]:
    out: list[float] = []
    for group in opt.param_groups:
        out.append(group["lr"])
        out.extend([group["momentum"]] if "momentum" in group else group["betas"])
    return out


def assert_close(ours: Sequence[float], theirs: Sequence[float], where: str) -> None:
    assert len(ours) == len(theirs), where
    for a, b in zip(ours, theirs, strict=True):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), f"{where}: {ours} != {theirs}"


def resumed(opt: Any) -> Any:
    """Groups as a checkpointed optimizer would hold them, for last_epoch != -1."""
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"] * 2
    return opt


# Metric sequences for ReduceLROnPlateau: improvements, plateaus and noise.
LOSS = [1.0 / (1 + i // 7) + 0.003 * ((i * 7) % 5) for i in range(STEPS)]
ACC = [1.0 - x for x in LOSS]
FRACTIONAL = [i + j / 4 for i in range(15) for j in range(4)]
JUMPS = [0.5, 1.25, 7.75, 3.0, 20.5, 2.0, 9.999, 11.0, 0.0, 6.5, 31.25, 4.5]
EPOCHS = [3, 7, 12, 5, 0, 30, 31, 8, 59, 1, 2, 44]

Build = Callable[[Any, Any], Any]

CASES = [
    # (id, build(module, optimizer) -> scheduler or list stepped in order, kind, feed or steps)
    ("lambda", lambda m, o: m.LambdaLR(o, lambda e: 0.95**e), "sgd", STEPS),
    (
        "lambda-per-group",
        lambda m, o: m.LambdaLR(o, [lambda e: 1 / (1 + e), lambda e: 0.5 ** (e // 7)]),
        "sgd",
        STEPS,
    ),
    ("step", lambda m, o: m.StepLR(o, step_size=7, gamma=0.5), "sgd", STEPS),
    ("step-every-epoch", lambda m, o: m.StepLR(o, step_size=1), "adam", STEPS),
    ("step-resumed", lambda m, o: m.StepLR(resumed(o), 5, 0.5, last_epoch=9), "sgd", STEPS),
    ("step-epochs", lambda m, o: m.StepLR(o, step_size=4, gamma=0.7), "sgd", EPOCHS),
    ("multistep", lambda m, o: m.MultiStepLR(o, [5, 12, 30], gamma=0.3), "sgd", STEPS),
    ("multistep-range", lambda m, o: m.MultiStepLR(o, range(10, 60, 10)), "adam", STEPS),
    ("multistep-epochs", lambda m, o: m.MultiStepLR(o, [2, 8, 31]), "sgd", EPOCHS),
    ("exponential", lambda m, o: m.ExponentialLR(o, 0.93), "sgd", STEPS),
    ("exponential-resumed", lambda m, o: m.ExponentialLR(resumed(o), 0.9, 4), "sgd", STEPS),
    ("exponential-epochs", lambda m, o: m.ExponentialLR(o, 0.95), "sgd", EPOCHS),
    ("linear-default", lambda m, o: m.LinearLR(o), "sgd", STEPS),
    ("linear-decay", lambda m, o: m.LinearLR(o, 1.0, 0.1, total_iters=20), "sgd", STEPS),
    ("linear-to-zero", lambda m, o: m.LinearLR(o, 0.25, 0.0, total_iters=STEPS), "adam", STEPS),
    ("linear-epochs", lambda m, o: m.LinearLR(o, 0.2, 0.9, total_iters=10), "sgd", EPOCHS),
    ("cosine", lambda m, o: m.CosineAnnealingLR(o, T_max=STEPS), "sgd", STEPS),
    ("cosine-past-tmax", lambda m, o: m.CosineAnnealingLR(o, T_max=10), "sgd", 40),
    ("cosine-eta-min", lambda m, o: m.CosineAnnealingLR(o, 7, eta_min=0.01), "sgd", STEPS),
    ("cosine-resumed", lambda m, o: m.CosineAnnealingLR(resumed(o), 30, 1e-3, 10), "sgd", STEPS),
    ("cosine-epochs", lambda m, o: m.CosineAnnealingLR(o, T_max=20), "sgd", EPOCHS),
    (
        "cosine+exponential",
        lambda m, o: [m.CosineAnnealingLR(o, T_max=10, eta_min=1e-3), m.ExponentialLR(o, 0.97)],
        "sgd",
        STEPS,
    ),
    (
        "chained-cosine-exponential",
        lambda m, o: m.ChainedScheduler([m.CosineAnnealingLR(o, 20), m.ExponentialLR(o, 0.9)]),
        "adam",
        STEPS,
    ),
    (
        "chained-step-cosine",
        lambda m, o: m.ChainedScheduler([m.StepLR(o, 9, 0.5), m.CosineAnnealingLR(o, 10)], o),
        "sgd",
        STEPS,
    ),
    (
        "sequential-warmup-cosine",
        lambda m, o: m.SequentialLR(
            o, [m.LinearLR(o, 0.1, total_iters=5), m.CosineAnnealingLR(o, T_max=55)], [5]
        ),
        "sgd",
        STEPS,
    ),
    (
        "sequential-three",
        lambda m, o: m.SequentialLR(
            o, [m.LinearLR(o), m.ExponentialLR(o, 0.9), m.StepLR(o, 5, 0.5)], milestones=[5, 20]
        ),
        "adam",
        STEPS,
    ),
    (
        "sequential-lambda-multistep",
        lambda m, o: m.SequentialLR(
            o, [m.LambdaLR(o, lambda e: 0.9**e), m.MultiStepLR(o, [3, 10], 0.5)], [15]
        ),
        "sgd",
        STEPS,
    ),
    ("warm-restarts", lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=10), "sgd", STEPS),
    (
        "warm-restarts-tmult2",
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-4),
        "sgd",
        STEPS,
    ),
    (
        "warm-restarts-fractional",
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2),
        "sgd",
        FRACTIONAL,
    ),
    (
        "warm-restarts-jumps",
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, eta_min=0.001),
        "adam",
        JUMPS,
    ),
    (
        "warm-restarts-jumps-tmult3",
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=3),
        "sgd",
        JUMPS,
    ),
    ("onecycle-sgd", lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=STEPS), "sgd", STEPS),
    (
        "onecycle-adam-linear",
        lambda m, o: m.OneCycleLR(o, [1.0, 0.5], total_steps=70, anneal_strategy="linear"),
        "adam",
        STEPS,
    ),
    (
        "onecycle-three-phase",
        lambda m, o: m.OneCycleLR(o, 0.8, epochs=6, steps_per_epoch=10, three_phase=True),
        "sgd",
        STEPS,
    ),
    (
        "onecycle-adam-three-phase",
        lambda m, o: m.OneCycleLR(
            o, 0.3, STEPS, pct_start=0.25, div_factor=10.0, final_div_factor=100.0, three_phase=True
        ),
        "adam",
        STEPS,
    ),
    (
        "onecycle-momentum-per-group",
        lambda m, o: m.OneCycleLR(
            o, 2.0, 80, base_momentum=[0.8, 0.7], max_momentum=[0.9, 0.99], pct_start=0.4
        ),
        "sgd",
        STEPS,
    ),
    (
        "onecycle-no-momentum",
        lambda m, o: m.OneCycleLR(o, 1.0, STEPS, cycle_momentum=False),
        "adam",
        STEPS,
    ),
    ("plateau-min-rel", lambda m, o: m.ReduceLROnPlateau(o, patience=2), "sgd", LOSS),
    (
        "plateau-max-abs-cooldown",
        lambda m, o: m.ReduceLROnPlateau(
            o, "max", 0.5, patience=1, threshold=0.05, threshold_mode="abs", cooldown=3
        ),
        "sgd",
        ACC,
    ),
    (
        "plateau-min-abs-min-lr",
        lambda m, o: m.ReduceLROnPlateau(
            o, factor=0.5, patience=0, threshold_mode="abs", min_lr=[0.01, 0.002]
        ),
        "adam",
        LOSS,
    ),
    (
        "plateau-max-rel-eps",
        lambda m, o: m.ReduceLROnPlateau(o, "max", 0.3, 1, 0.01, min_lr=0.004, eps=1e-3),
        "sgd",
        ACC,
    ),
]


def build(fn: Build, module: Any, opt: Any) -> list[Any]:
    made = fn(module, opt)
    return made if isinstance(made, list) else [made]


def feed_of(feed: int | list[float]) -> list[tuple[float, ...]]:
    return [()] * feed if isinstance(feed, int) else [(x,) for x in feed]


def run_ours(fn: Build, kind: str, feed: list[tuple[float, ...]]) -> list[list[float]]:
    opt = StandIn(kind)
    scheds = build(fn, nls, opt)
    trace = [snapshot(opt)]
    for args in feed:
        for sched in scheds:
            sched.step(*args)
        trace.append(snapshot(opt))
    return trace


@pytest.mark.parametrize(("fn", "kind", "feed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_matches_torch(fn: Build, kind: str, feed: int | list[float]) -> None:
    ours_opt, theirs_opt = StandIn(kind), torch_optimizer(kind)
    ours, theirs = build(fn, nls, ours_opt), build(fn, tls, theirs_opt)
    assert_close(snapshot(ours_opt), snapshot(theirs_opt), "after construction")
    for i, args in enumerate(feed_of(feed)):
        theirs_opt.step()  # torch warns if its scheduler steps before the optimizer
        for sched in ours:
            sched.step(*args)
        for sched in theirs:
            sched.step(*args)
        assert_close(snapshot(ours_opt), snapshot(theirs_opt), f"step {i + 1}")
        assert_close(ours[-1].get_last_lr(), theirs[-1].get_last_lr(), f"get_last_lr {i + 1}")


@pytest.mark.parametrize(("fn", "kind", "feed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_state_dict_round_trip(fn: Build, kind: str, feed: int | list[float]) -> None:
    steps = feed_of(feed)
    expected = run_ours(fn, kind, steps)
    cut = len(steps) // 3 + 1
    opt = StandIn(kind)
    scheds = build(fn, nls, opt)
    for args in steps[:cut]:
        for sched in scheds:
            sched.step(*args)
    # As a checkpoint would: deep copies, the optimizer's groups saved alongside.
    saved_states = copy.deepcopy([sched.state_dict() for sched in scheds])
    saved_groups = copy.deepcopy(opt.param_groups)
    assert all("optimizer" not in state for state in saved_states)

    fresh = StandIn(kind)
    resumed_scheds = build(fn, nls, fresh)
    # Restore the optimizer after building the schedulers, whose constructors set lrs.
    for group, saved in zip(fresh.param_groups, saved_groups, strict=True):
        group.clear()
        group.update(saved)
    for sched, state in zip(resumed_scheds, saved_states, strict=True):
        sched.load_state_dict(state)
    assert snapshot(fresh) == expected[cut]
    for i, args in enumerate(steps[cut:], start=cut + 1):
        for sched in resumed_scheds:
            sched.step(*args)
        assert snapshot(fresh) == expected[i], f"step {i}"


class Halving:
    """A callable object: LambdaLR saves its attributes in the state dict."""

    def __init__(self, every: int) -> None:
        self.every = every

    def __call__(self, epoch: int) -> float:
        return 0.5 ** (epoch // self.every)


def test_lambda_state_dict_saves_callable_objects_only() -> None:
    obj = Halving(3)
    sched = LambdaLR(StandIn(), [obj, lambda e: 1.0])
    obj.every = 5
    state = sched.state_dict()
    theirs = tls.LambdaLR(torch_optimizer("sgd"), [Halving(5), lambda e: 1.0]).state_dict()
    assert state["lr_lambdas"] == theirs["lr_lambdas"] == [{"every": 5}, None]

    fresh_obj = Halving(3)
    fresh = LambdaLR(StandIn(), [fresh_obj, lambda e: 1.0])
    fresh.load_state_dict(state)
    assert fresh_obj.every == 5
    assert state["lr_lambdas"] == [{"every": 5}, None]  # the caller's dict is left intact


def test_records_initial_lr_and_resumes_from_it() -> None:
    opt = StandIn()
    sched = ExponentialLR(opt, 0.5)
    assert [g["initial_lr"] for g in opt.param_groups] == list(LRS)
    assert sched.base_lrs == list(LRS) and sched.get_last_lr() == list(LRS)
    assert isinstance(sched.state_dict(), dict) and "optimizer" not in sched.state_dict()


def test_missing_initial_lr_when_resuming() -> None:
    with pytest.raises(ValueError, match=r"'initial_lr'.*param_groups\[0\].*last_epoch=3"):
        CosineAnnealingLR(StandIn(), T_max=10, last_epoch=3)
    with pytest.raises(KeyError):  # what PyTorch raises, for code written against it
        StepLR(StandIn(), 2, last_epoch=0)


def other() -> StandIn:
    return StandIn()


def overrun(sched: OneCycleLR) -> None:
    for _ in range(3):
        sched.step()


SHARED = StandIn()

ERRORS: list[tuple[str, Callable[[], object], str]] = [
    # (id, call, regex naming the argument and its value)
    ("step_size", lambda: StepLR(StandIn(), step_size=0), "step_size.*0"),
    ("step-gamma", lambda: StepLR(StandIn(), 3, gamma=0.0), "gamma.*0.0"),
    ("multistep-gamma", lambda: MultiStepLR(StandIn(), [2], gamma=-0.5), r"gamma.*-0\.5"),
    ("milestones-order", lambda: MultiStepLR(StandIn(), [5, 3]), r"milestones.*\[5, 3\]"),
    ("milestones-repeat", lambda: MultiStepLR(StandIn(), [2, 2]), r"milestones.*\[2, 2\]"),
    ("exponential-gamma", lambda: ExponentialLR(StandIn(), 0), "gamma.*0"),
    ("start_factor-0", lambda: LinearLR(StandIn(), start_factor=0), "start_factor.*0"),
    ("start_factor-big", lambda: LinearLR(StandIn(), start_factor=1.5), r"start_factor.*1\.5"),
    ("end_factor", lambda: LinearLR(StandIn(), end_factor=-0.1), r"end_factor.*-0\.1"),
    ("T_max-0", lambda: CosineAnnealingLR(StandIn(), T_max=0), "T_max.*0"),
    ("T_max-negative", lambda: CosineAnnealingLR(StandIn(), T_max=-3), "T_max.*-3"),
    ("T_0", lambda: CosineAnnealingWarmRestarts(StandIn(), T_0=0), "T_0.*0"),
    ("T_0-float", lambda: CosineAnnealingWarmRestarts(StandIn(), T_0=2.5), r"T_0.*2\.5"),  # type: ignore[arg-type]
    ("T_mult", lambda: CosineAnnealingWarmRestarts(StandIn(), 5, T_mult=0), "T_mult.*0"),
    ("eta_min", lambda: CosineAnnealingWarmRestarts(StandIn(), 5, eta_min="0"), "eta_min.*'0'"),  # type: ignore[arg-type]
    ("restart-epoch", lambda: CosineAnnealingWarmRestarts(StandIn(), 5).step(-1), "epoch.*-1"),
    ("total_steps-missing", lambda: OneCycleLR(StandIn(), 1.0), "total_steps.*None"),
    ("total_steps-half", lambda: OneCycleLR(StandIn(), 1.0, epochs=3), "total_steps.*None"),
    ("total_steps-0", lambda: OneCycleLR(StandIn(), 1.0, total_steps=0), "total_steps.*0"),
    ("epochs", lambda: OneCycleLR(StandIn(), 1.0, epochs=0, steps_per_epoch=5), "epochs.*0"),
    (
        "steps_per_epoch",
        lambda: OneCycleLR(StandIn(), 1.0, epochs=2, steps_per_epoch=-1),
        "steps_per_epoch.*-1",
    ),
    ("pct_start", lambda: OneCycleLR(StandIn(), 1.0, 10, pct_start=1.5), r"pct_start.*1\.5"),
    ("pct_start-int", lambda: OneCycleLR(StandIn(), 1.0, 10, pct_start=1), "pct_start.*1"),
    (
        "anneal_strategy",
        lambda: OneCycleLR(StandIn(), 1.0, 10, anneal_strategy="exp"),  # type: ignore[arg-type]
        "anneal_strategy.*'exp'",
    ),
    ("max_lr-length", lambda: OneCycleLR(StandIn(), [1.0], 10), r"max_lr.*\[1\.0\]"),
    (
        "max_momentum-length",
        lambda: OneCycleLR(StandIn(), 1.0, 10, max_momentum=[0.9, 0.9, 0.9]),
        "max_momentum",
    ),
    (
        "cycle_momentum",
        lambda: OneCycleLR(type("Bare", (), {"param_groups": [{"lr": 0.1}]})(), 1.0, 10),
        "cycle_momentum",
    ),
    (
        "onecycle-overrun",
        lambda: overrun(OneCycleLR(StandIn(), 1.0, total_steps=2)),
        "total_steps.*2",
    ),
    ("lr_lambda", lambda: LambdaLR(StandIn(), [lambda e: 1.0]), "lr_lambda.*1"),
    ("factor", lambda: ReduceLROnPlateau(StandIn(), factor=1.0), r"factor.*1\.0"),
    ("mode", lambda: ReduceLROnPlateau(StandIn(), mode="avg"), "mode.*'avg'"),  # type: ignore[arg-type]
    (
        "threshold_mode",
        lambda: ReduceLROnPlateau(StandIn(), threshold_mode="pct"),  # type: ignore[arg-type]
        "threshold_mode.*'pct'",
    ),
    ("min_lr", lambda: ReduceLROnPlateau(StandIn(), min_lr=[0.1]), r"min_lr.*\[0\.1\]"),
    ("sequential-empty", lambda: SequentialLR(StandIn(), [], []), r"schedulers.*\[\]"),
    (
        "sequential-milestones-count",
        lambda: SequentialLR(SHARED, [StepLR(SHARED, 2), StepLR(SHARED, 3)], [1, 2]),
        r"milestones.*\[1, 2\]",
    ),
    (
        "sequential-milestones-order",
        lambda: SequentialLR(SHARED, [StepLR(SHARED, 2)] * 3, [6, 4]),
        r"milestones.*\[6, 4\]",
    ),
    (
        "sequential-other-optimizer",
        lambda: SequentialLR(SHARED, [StepLR(other(), 2)], []),
        r"schedulers\[0\].*StepLR",
    ),
    (
        "sequential-plateau",
        lambda: SequentialLR(SHARED, [ReduceLROnPlateau(SHARED)], []),  # type: ignore[list-item]
        r"schedulers\[0\].*ReduceLROnPlateau",
    ),
    (
        "sequential-epoch",
        lambda: SequentialLR(SHARED, [StepLR(SHARED, 2)], []).step(3),
        "epoch.*3",
    ),
    # A non-number names the argument and its value (issue 16), rather than a comparison's
    # TypeError or a message about initial_lr.
    ("T_max-str", lambda: CosineAnnealingLR(StandIn(), T_max="10"), "T_max.*'10'"),  # type: ignore[arg-type]
    ("last_epoch-str", lambda: StepLR(StandIn(), 2, last_epoch="a"), "last_epoch.*'a'"),  # type: ignore[arg-type]
    ("last_epoch-low", lambda: ExponentialLR(StandIn(), 0.5, last_epoch=-2), "last_epoch.*-2"),
    ("gamma-str", lambda: ExponentialLR(StandIn(), "0.5"), "gamma.*'0.5'"),  # type: ignore[arg-type]
    ("gamma-nan", lambda: StepLR(StandIn(), 2, gamma=math.nan), "gamma.*nan"),
    ("eta_min-str", lambda: CosineAnnealingLR(StandIn(), 5, eta_min="0"), "eta_min.*'0'"),  # type: ignore[arg-type]
    ("total_iters-0", lambda: LinearLR(StandIn(), total_iters=0), "total_iters.*0"),
    ("milestones-str", lambda: MultiStepLR(StandIn(), ["2"]), r"milestones.*\['2'\]"),  # type: ignore[list-item]
    ("div_factor", lambda: OneCycleLR(StandIn(), 1.0, 10, div_factor=0), "div_factor.*0"),
    ("max_lr-str", lambda: OneCycleLR(StandIn(), "1", 10), "max_lr.*'1'"),  # type: ignore[arg-type]
    ("sequential-last_epoch", lambda: SequentialLR(SHARED, [StepLR(SHARED, 2)], [],
                                                   last_epoch="a"), "last_epoch.*'a'"),  # type: ignore[arg-type]
    ("plateau-patience", lambda: ReduceLROnPlateau(StandIn(), patience=-1), "patience.*-1"),
    ("plateau-factor-str", lambda: ReduceLROnPlateau(StandIn(), factor="0.5"), "factor.*'0.5'"),  # type: ignore[arg-type]
    ("plateau-metric", lambda: ReduceLROnPlateau(StandIn()).step("x"), "metrics.*'x'"),  # type: ignore[arg-type]
    ("step-epoch-str", lambda: StepLR(StandIn(), 2).step("x"), "epoch.*'x'"),  # type: ignore[arg-type]
    ("chained-empty", lambda: ChainedScheduler([]), r"schedulers.*\[\]"),
    (
        "chained-other-optimizer",
        lambda: ChainedScheduler([StepLR(SHARED, 2), StepLR(other(), 2)]),
        r"schedulers\[1\]",
    ),
]


@pytest.mark.parametrize(("call", "pattern"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_arguments(call: Callable[[], object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        call()


def everything(sched: Any, opt: StandIn) -> tuple[Any, ...]:
    """A scheduler's whole state, its children's, and the optimizer's groups."""
    children = [everything(c, opt)[0] for c in getattr(sched, "_schedulers", [])]
    return copy.deepcopy(sched.state_dict()), children, copy.deepcopy(opt.param_groups)


def cosine_then_step(o: StandIn) -> Any:
    return SequentialLR(o, [CosineAnnealingLR(o, 4), StepLR(o, 2)], milestones=[4])


SCHEDULERS: list[tuple[str, Callable[[StandIn], Any]]] = [
    ("step", lambda o: StepLR(o, 3, 0.5)),
    ("cosine", lambda o: CosineAnnealingLR(o, T_max=10)),
    ("restarts", lambda o: CosineAnnealingWarmRestarts(o, T_0=3)),
    ("onecycle", lambda o: OneCycleLR(o, 1.0, total_steps=20)),
    ("sequential", cosine_then_step),
    ("chained", lambda o: ChainedScheduler([ExponentialLR(o, 0.9), StepLR(o, 2)])),
    ("plateau", lambda o: ReduceLROnPlateau(o, patience=0)),
]


def step(sched: Any) -> None:
    sched.step(1.0) if isinstance(sched, ReduceLROnPlateau) else sched.step()


@pytest.mark.parametrize("build", [b for _, b in SCHEDULERS], ids=[n for n, _ in SCHEDULERS])
def test_a_failed_step_or_load_changes_nothing(build: Callable[[StandIn], Any]) -> None:
    """A bad step() or load_state_dict() raises ValueError and leaves everything as it was;
    the scheduler then goes on exactly as a twin that never saw the bad call."""
    opt, twin_opt = StandIn(), StandIn()
    sched, twin = build(opt), build(twin_opt)
    for s in (sched, twin):
        step(s)
    before = everything(sched, opt)
    bad_calls: list[Callable[[], object]] = [
        lambda: sched.step(metrics="x") if isinstance(sched, ReduceLROnPlateau)
        else sched.step("x"),
        lambda: sched.load_state_dict({"optimizer": StandIn()}),
        lambda: sched.load_state_dict({"last_epoch": "a"}),
        lambda: sched.load_state_dict("not a dict"),
    ]
    for bad in bad_calls:
        with pytest.raises(ValueError):
            bad()
        assert everything(sched, opt) == before
        assert sched.optimizer is opt
    for _ in range(5):
        step(sched)
        step(twin)
    assert snapshot(opt) == snapshot(twin_opt)


@pytest.mark.parametrize(
    ("build", "state", "pattern"),
    [
        (lambda o: CosineAnnealingLR(o, 10), {"T_max": 0}, "T_max.*0"),
        (lambda o: StepLR(o, 3), {"gamma": "0.1"}, "gamma.*'0.1'"),
        (lambda o: OneCycleLR(o, 1.0, 10), {"anneal_strategy": "exp"}, "anneal_strategy.*'exp'"),
        (lambda o: ReduceLROnPlateau(o), {"factor": 2.0}, r"factor.*2\.0"),
        (cosine_then_step, {"_schedulers": [{}, {"gamma": -1}]}, r"gamma.*-1"),
        (cosine_then_step, {"_schedulers": [{}]}, r"_schedulers must hold 2 states"),
    ],
    ids=["T_max-0", "gamma-str", "anneal", "plateau-factor", "child", "child-count"],
)
def test_a_state_dict_with_a_bad_value_is_refused(
    build: Callable[[StandIn], Any], state: dict[str, Any], pattern: str
) -> None:
    opt = StandIn()
    sched = build(opt)
    step(sched)
    before = everything(sched, opt)
    with pytest.raises(ValueError, match=pattern):
        sched.load_state_dict(state)
    assert everything(sched, opt) == before
    step(sched)  # still steps: no division by a T_max of 0


def test_a_step_that_fails_midway_restores_the_lrs() -> None:
    opt = StandIn()
    sched = OneCycleLR(opt, 1.0, total_steps=2)
    sched.step()
    sched.step()
    before = everything(sched, opt)
    with pytest.raises(ValueError, match="total_steps=2"):
        sched.step()
    assert everything(sched, opt) == before
