"""Errors found on the device, raised at the next read from it: checks without a host sync.

Checking a value on the host (an index, a class target) means waiting for the
queue, on every call, in the hot path. Instead an op computes, on the device,
one int64 scalar that equals ``fine`` unless something is wrong (then it holds
an example of the bad value) and hands it to ``report``. The next read of any
tensor on that device (``numpy()``, ``item()``, ``tolist()``: a wait anyway)
reads the pending scalars first and raises ValueError with the op's message.
Like an asynchronous device error in CUDA, the error surfaces at that read,
which may be a later one than the loss's, but it always names the op, the bad
value and what was expected. Reports of one kind accumulate into one scalar
(their maximum), so a loop that never reads holds one scalar per kind, not one
per call.

Under a capture (netcl.jit), the report folds ``example`` into a scalar of the
capture's own by a launch the capture records (so every replay folds in its
own value), and pending-ness is host work the replay repeats (a dict entry): a
bad value in any replay raises at the next read, as eagerly; that read sets the
scalar back to ``fine``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

from netcl.core.device import Device
from netcl.core.tensor import ops
from netcl.core.tensor.launch import current_observer, host_effect, observing
from netcl.core.tensor.tensor import Tensor, read_checks

_lock = threading.Lock()
# device -> key -> (the accumulated scalar, its fine value, the message for a bad value,
# whether it is a capture's own scalar, to be set back to fine once read)
_pending: dict[Device, dict[str, tuple[Tensor, int, Callable[[int], str], bool]]] = {}


def report(key: str, example: Tensor, fine: int, describe: Callable[[int], str]) -> None:
    """Raise ``ValueError(describe(v))`` at the next read if ``example`` (an int64 scalar on
    the device) holds some v != ``fine``. ``key`` names the kind of check; reports of one key
    keep the largest value, so ``fine`` must be the smallest int64 the check can produce."""
    if current_observer() is None:
        _accumulate(key, example, fine, describe)
        return
    with observing(None):  # set once, not at every replay: replays fold into it
        folded = ops.fill_(ops.copy(example), fine)
    ops.elementwise.elementwise("report", "(a > b ? a : b)", [folded, example], out=folded)
    host_effect(partial(_hold, f"{key}#{id(folded)}", folded, fine, describe))


def _hold(key: str, folded: Tensor, fine: int, describe: Callable[[int], str]) -> None:
    with _lock:
        _pending.setdefault(folded.device, {}).setdefault(key, (folded, fine, describe, True))


def _accumulate(key: str, example: Tensor, fine: int, describe: Callable[[int], str]) -> None:
    with _lock:
        kinds = _pending.setdefault(example.device, {})
        if key in kinds:
            example = ops.maximum(kinds[key][0], example)
        kinds[key] = (example, fine, describe, False)


def raise_pending(device: Device) -> None:
    """Read every check pending on ``device``; one ValueError names all that found bad values."""
    if not _pending:
        return
    with _lock:
        kinds = _pending.pop(device, {})
    found = []
    for example, fine, describe, captured in kinds.values():
        value = int(example.numpy())  # a read: it calls back here, with nothing left pending
        if value != fine:
            found.append(describe(value))
            if captured:
                ops.fill_(example, fine)
    if found:
        raise ValueError("; ".join(found))


read_checks.append(raise_pending)
