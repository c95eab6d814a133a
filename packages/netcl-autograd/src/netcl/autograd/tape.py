"""Tape: records ops while installed in the tensor layer's recorder slot, then runs backward."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from netcl.autograd.hooks import run_post_accumulate_grad_hooks
from netcl.autograd.node import Node
from netcl.autograd.rules import RULES
from netcl.core.tensor import Tensor, ones_like, ops, recorder
from netcl.core.tensor.autocast import autocast

# Tapes that may still hold a record, newest last, so that ``grad(outputs, inputs)``
# can find the one that recorded ``outputs`` without the tensors pointing at a tape.
_live_tapes: list[weakref.ref[Tape]] = []
_live_tapes_lock = threading.Lock()  # threads add tapes while another prunes the list
# The list's length at which adding a tape first drops the dead references (then twice
# the live count): without it, every tape of a loop that never calls grad() left one.
_PRUNE_AT = 64
_prune_at = _PRUNE_AT
# The tape that closed last in this thread (or asyncio task), held so that
# ``with Tape(): ...`` then ``grad(...)`` works without naming the tape; at most one
# record per thread is kept alive this way.
_last_closed: ContextVar[Tape | None] = ContextVar("netcl_last_closed_tape", default=None)


class Tape:
    """Reverse-mode autodiff over the ops run inside ``with Tape() as tape:``.

    While the block runs, the tape is the tensor layer's recorder: every op
    with an input that requires grad is appended to its record. After (or
    inside) the block, ``tape.backward(loss)`` walks the record in reverse,
    applies each op's backward rule with no recorder installed, and
    accumulates into ``.grad`` of every leaf with ``requires_grad``:
    ``leaf.grad = g`` (a fresh contiguous tensor: the walk's own gradient handed
    over when nothing else can reach its memory, else a copy) when it is None, else
    ``leaf.grad.add_(g)`` in place, so grads that live as views into a larger
    buffer stay there. A leaf is accumulated as soon as no op left in the walk
    can add to it, and its post-accumulate-grad hooks
    (``netcl.autograd.register_post_accumulate_grad_hook``) run then, while the
    rest of the walk is still to come.

    A backward pass frees the record (the saved tensors with it); a second
    backward then raises ``RuntimeError``. ``Tape(retain=True)``, or
    ``backward(..., retain_graph=True)`` on the earlier call, keeps it.

    Nesting: a tape entered while another recorder is installed forwards each
    op to it as well, so an outer tape can differentiate through an inner
    block. ``no_grad()`` inside a tape stops both from recording. A tape
    differentiates only through ops it recorded: a tensor computed before the
    tape was entered is a constant to it unless it is a leaf.

    A tape records one ``with`` block; entering it again raises ``RuntimeError``.
    """

    def __init__(self, retain: bool = False) -> None:
        self.retain = retain
        self._nodes: list[Node | None] = []
        self._parent: recorder.Recorder | None = None
        self._installed: AbstractContextManager[None] | None = None
        self._entered = False
        self._freed = False

    # -- recording ----------------------------------------------------------------------------
    def __enter__(self) -> Tape:
        if self._entered:
            raise RuntimeError("this Tape already recorded a block; use a new Tape for another")
        self._entered = True
        self._parent = recorder.current()
        self._installed = recorder.recording(self)
        self._installed.__enter__()
        global _prune_at
        with _live_tapes_lock:
            if len(_live_tapes) >= _prune_at:
                _live_tapes[:] = [ref for ref in _live_tapes if ref() is not None]
                _prune_at = max(_PRUNE_AT, 2 * len(_live_tapes))
            _live_tapes.append(weakref.ref(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._installed is not None
        self._installed.__exit__(exc_type, exc, tb)
        self._installed = None
        _last_closed.set(self)

    def record(
        self, op: str, inputs: Sequence[Tensor], output: Tensor, saved: Mapping[str, Any]
    ) -> None:
        """Called by the tensor layer for each op whose inputs need a gradient."""
        if not self._freed:
            self._nodes.append(Node(op, tuple(inputs), output, saved))
        if self._parent is not None:
            self._parent.record(op, inputs, output, saved)

    def __len__(self) -> int:
        """The number of ops recorded (0 once a backward pass freed the record)."""
        return sum(node is not None for node in self._nodes)

    def nodes(self) -> Iterator[Node]:
        """The recorded ops, in the order they ran."""
        return (node for node in self._nodes if node is not None)

    def recorded(self, tensor: Tensor) -> bool:
        """Whether ``tensor`` is the output of an op this tape still holds."""
        return any(node.output is tensor for node in self.nodes())

    # -- differentiating ----------------------------------------------------------------------
    def backward(
        self, output: Tensor, grad: Tensor | None = None, retain_graph: bool | None = None
    ) -> None:
        """Accumulate d(output)/d(leaf), seeded with ``grad``, into each leaf's ``.grad``.

        ``grad`` may be left out only when ``output`` has one element (a loss);
        otherwise it is the gradient of some scalar with respect to ``output``
        and has ``output``'s shape. Only leaves with ``requires_grad`` receive
        a ``.grad``; gradients of intermediate tensors are dropped as soon as
        they have been pushed further back.
        """
        # Backward ops run in the dtypes the forward recorded, never autocast again (a
        # gradient has its input's dtype), as PyTorch's engine runs them outside autocast.
        with autocast(enabled=False):
            grads, tensors = self._run([output], [grad], (), retain_graph, _accumulate_into_leaf)
        with recorder.recording(None):
            # What the walk did not hand over: the output itself, when it is a leaf (its
            # gradient is the caller's seed, so it is copied).
            for key, g in grads.items():
                leaf = tensors[key]
                if leaf.is_leaf and leaf.requires_grad:
                    _accumulate_into_leaf(leaf, g, False)

    def grad(
        self,
        outputs: Tensor | Sequence[Tensor],
        inputs: Sequence[Tensor],
        grad_outputs: Sequence[Tensor | None] | None = None,
        retain_graph: bool | None = None,
        allow_unused: bool = False,
    ) -> list[Tensor | None]:
        """d(outputs)/d(inputs), returned instead of accumulated; no ``.grad`` is touched.

        ``inputs`` may be leaves or intermediate tensors this tape recorded.
        An input that ``outputs`` do not depend on raises ``ValueError``
        unless ``allow_unused``, when its entry is None.
        """
        outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        seeds = list(grad_outputs) if grad_outputs is not None else [None] * len(outs)
        if len(seeds) != len(outs):
            raise ValueError(f"grad: {len(outs)} outputs but {len(seeds)} grad_outputs")
        keep = {id(x) for x in inputs}
        with autocast(enabled=False):
            grads, _ = self._run(outs, seeds, keep, retain_graph)
        result: list[Tensor | None] = []
        with recorder.recording(None):
            for i, x in enumerate(inputs):
                g = grads.get(id(x))
                if g is None and not allow_unused:
                    raise ValueError(
                        f"grad: input {i} (shape {x.shape}) is not used to compute the outputs "
                        "on this tape; pass allow_unused=True to get None for it"
                    )
                # A copy: a rule may pass a gradient through unchanged, so g can
                # alias a seed or another input's gradient.
                result.append(None if g is None else ops.copy(g))
        return result

    def _free(self) -> None:
        self._nodes = []
        self._freed = True
        if _last_closed.get() is self:
            _last_closed.set(None)

    def _run(
        self,
        outputs: Sequence[Tensor],
        seeds: Sequence[Tensor | None],
        keep: set[int] | tuple[()],
        retain_graph: bool | None,
        on_leaf_done: Callable[[Tensor, Tensor, bool], None] | None = None,
    ) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
        """The reverse walk: gradients of every tensor reached, keyed by ``id``.

        Intermediate gradients are dropped once pushed back unless their id is
        in ``keep``. ``tensors`` maps the same ids to the tensors (the record
        holds them alive, so an id cannot be reused during the walk). With
        ``on_leaf_done``, a leaf that requires grad is handed to it with its
        gradient (and dropped from the result) right after the walk passes the
        earliest op that used it: no op left can add to its gradient. The flag
        passed with it says whether the walk owns that gradient's memory (see ``_push``).
        """
        if self._freed:
            raise RuntimeError(
                "this Tape's record was already used by a backward pass and freed; to run "
                "backward more than once create Tape(retain=True) or pass retain_graph=True "
                "to every backward call but the last"
            )
        retain = self.retain if retain_graph is None else retain_graph
        grads: dict[int, Tensor] = {}
        tensors: dict[int, Tensor] = {}
        # Keys of the gradients whose memory only the walk can reach; tracked only when
        # leaves are handed over (their gradients are then moved, not copied, into .grad).
        owned: set[int] | None = set() if on_leaf_done is not None else None
        done_at = _leaves_done_at(self._nodes) if on_leaf_done is not None else {}
        with recorder.recording(None):
            for out, seed in zip(outputs, seeds, strict=True):
                _add(grads, tensors, owned, out, _seed(out, seed), False)  # maybe the caller's
            try:
                for i in range(len(self._nodes) - 1, -1, -1):
                    node = self._nodes[i]
                    if node is None:
                        continue
                    g = grads.get(id(node.output))
                    if g is not None:
                        dropped = id(node.output) not in keep
                        if dropped:
                            # Every consumer of this output ran later: its gradient is complete.
                            del grads[id(node.output)]
                        g_owned = owned is not None and dropped and id(node.output) in owned
                        _push(RULES, node, g, grads, tensors, owned, g_owned)
                    for leaf in done_at.get(i, ()):
                        leaf_grad = grads.pop(id(leaf), None)
                        if leaf_grad is not None and on_leaf_done is not None:
                            sole = owned is not None and id(leaf) in owned
                            on_leaf_done(leaf, leaf_grad, sole)
                    if not retain:
                        self._nodes[i] = None  # frees the saved tensors as the walk goes
            finally:
                # Also after a failed walk: a half-freed record must not be walked again.
                if not retain:
                    self._free()
        return grads, tensors


def _leaves_done_at(nodes: Sequence[Node | None]) -> dict[int, list[Tensor]]:
    """For each node index, the leaves that require grad whose earliest use is that node."""
    first_use: dict[int, tuple[int, Tensor]] = {}
    for i, node in enumerate(nodes):
        if node is None:
            continue
        for x in node.inputs:
            if x.is_leaf and x.requires_grad and id(x) not in first_use:
                first_use[id(x)] = (i, x)
    done_at: dict[int, list[Tensor]] = {}
    for i, x in first_use.values():
        done_at.setdefault(i, []).append(x)
    return done_at


def _seed(output: Tensor, seed: Tensor | None) -> Tensor:
    if not output.requires_grad:
        raise RuntimeError(
            f"backward: the output (shape {output.shape}) does not require grad: no input of "
            "the ops that made it requires grad, or it was computed outside the Tape "
            "(or under no_grad)"
        )
    if seed is None:
        if output.size != 1:
            raise RuntimeError(
                f"backward: a gradient can be left out only for a one-element output (a loss); "
                f"this output has shape {output.shape}: pass grad= of that shape"
            )
        return ones_like(output)
    if seed.shape != output.shape:
        raise ValueError(
            f"backward: grad has shape {seed.shape} but the output has shape {output.shape}"
        )
    return seed if seed.dtype == output.dtype else ops.cast(seed, output.dtype)


def _push(
    rules: Mapping[str, Any],
    node: Node,
    g: Tensor,
    grads: dict[int, Tensor],
    tensors: dict[int, Tensor],
    owned: set[int] | None = None,
    g_owned: bool = False,
) -> None:
    """Apply ``node``'s rule to ``g`` and add what it gives to its inputs' gradients.

    With ``owned``, also decide which of those gradients only the walk can reach
    (``g_owned``: ``g`` is such one, and the walk drops it after this call). A
    rule is a function of ``g`` and ``node`` alone: each gradient it returns is
    new memory or a view of what it was given. So a returned gradient is the
    walk's alone when no other returned one shares its buffer and that buffer is
    none of the node's inputs', output's or saved tensors', nor ``g``'s unless
    ``g`` was the walk's alone. A leaf's must also cover its buffer from the
    start, contiguously, to become ``.grad`` as it is.
    """
    rule = rules.get(node.op)
    if rule is None:
        raise NotImplementedError(f"backward: no rule for op {node.op!r} in netcl.autograd.rules")
    input_grads = rule(g, node)
    if len(input_grads) != len(node.inputs):
        raise RuntimeError(
            f"backward rule of {node.op!r} gave {len(input_grads)} gradients "
            f"for {len(node.inputs)} inputs"
        )
    given: set[int] | None = None
    for x, gx in zip(node.inputs, input_grads, strict=True):
        if gx is None or not x.requires_grad:
            continue
        if gx.shape != x.shape:
            raise RuntimeError(
                f"backward rule of {node.op!r} gave a gradient of shape {gx.shape} "
                f"for an input of shape {x.shape}"
            )
        sole = False
        if owned is not None and (not x.is_leaf or (gx.offset == 0 and gx.is_contiguous)):
            if given is None:
                given = _buffers_given(None if g_owned else g, node)
            ptr = gx.buffer.int_ptr
            sole = ptr not in given and sum(
                o is not None and o.buffer.int_ptr == ptr for o in input_grads
            ) == 1
        _add(grads, tensors, owned, x, gx, sole)


def _buffers_given(g: Tensor | None, node: Node) -> set[int]:
    """The buffers a rule could return views of that others can reach: its node's, and
    its gradient's unless that is None."""
    found = {node.output.buffer.int_ptr}
    if g is not None:
        found.add(g.buffer.int_ptr)
    found.update(x.buffer.int_ptr for x in node.inputs)
    pending: list[Any] = list(node.saved.values())
    while pending:
        value = pending.pop()
        if isinstance(value, Tensor):
            found.add(value.buffer.int_ptr)
        elif isinstance(value, (list, tuple)):
            pending.extend(value)
        elif isinstance(value, Mapping):
            pending.extend(value.values())
    return found


def _add(
    grads: dict[int, Tensor],
    tensors: dict[int, Tensor],
    owned: set[int] | None,
    x: Tensor,
    g: Tensor,
    sole: bool,
) -> None:
    """Add ``g`` to ``x``'s gradient; ``sole``: nothing but the walk can reach ``g``'s memory."""
    key = id(x)
    previous = grads.get(key)
    grads[key] = g if previous is None else ops.add(previous, g)
    tensors[key] = x
    if owned is not None:
        if sole or previous is not None:  # ops.add's is new memory
            owned.add(key)
        else:
            owned.discard(key)


def _accumulate_into_leaf(leaf: Tensor, g: Tensor, sole: bool) -> None:
    """Add ``g`` into ``leaf.grad``; ``sole``: the caller owns ``g``'s memory and drops ``g``."""
    if g.dtype != leaf.dtype:
        g = ops.cast(g, leaf.dtype)
        sole = True
    if leaf.grad is None:
        # Its own contiguous memory: a g the walk does not own may be a broadcast view,
        # shared with another input, a saved tensor or the caller's; one it owns is handed
        # over, so the largest gradient is not held twice for a moment.
        # A leaf with a grad home (an optimizer's flat grad buffer) copies g in itself:
        # g has the leaf's shape, dtype and device here, which its home has too.
        leaf.grad = g if sole or leaf.grad_home is not None else ops.copy(g)
    else:
        leaf.grad.add_(g)
    run_post_accumulate_grad_hooks(leaf)


def live_tape_for(output: Tensor) -> Tape | None:
    """The newest live tape that recorded ``output``, or None."""
    alive: list[weakref.ref[Tape]] = []
    found: Tape | None = None
    with _live_tapes_lock:
        for ref in _live_tapes:
            tape = ref()
            if tape is not None and not tape._freed:
                alive.append(ref)
        _live_tapes[:] = alive
    for ref in reversed(alive):
        tape = ref()
        if tape is not None and tape.recorded(output):
            found = tape
            break
    return found
