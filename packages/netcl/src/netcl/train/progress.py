"""EpochBar: an epoch's tqdm bar (samples/s, loss, lr), reading the loss back twice a second."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from tqdm import tqdm

from netcl.core.tensor import Tensor

# Reading a loss waits for the device to drain its queue; twice a second costs nothing
# noticeable, once a batch would stall the host's run-ahead on every step.
LOSS_EVERY_S = 0.5
# How often the bar redraws (tqdm's own default).
REDRAW_EVERY_S = 0.1


class EpochBar:
    """A tqdm bar over an epoch's samples, shown only on an interactive terminal."""

    def __init__(self, desc: str, total: int | None, lr: float, enabled: bool) -> None:
        self._bar = tqdm(
            total=total, desc=desc, unit="sample", unit_scale=True, leave=False,
            disable=not (enabled and sys.stderr.isatty()), dynamic_ncols=True,
            mininterval=REDRAW_EVERY_S,
        )
        self._lr = lr
        self._shown = 0.0

    def advance(self, samples: int, loss: Tensor) -> None:
        self._bar.update(samples)
        now = time.monotonic()
        if not self._bar.disable and now - self._shown >= LOSS_EVERY_S:
            self._shown = now
            self._bar.set_postfix(loss=f"{float(loss.item()):.4f}", lr=f"{self._lr:.3g}",
                                  refresh=False)

    def __enter__(self) -> EpochBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._bar.close()

    @staticmethod
    def write(line: str) -> None:
        """Print ``line`` without breaking a bar that is on screen."""
        tqdm.write(line)
