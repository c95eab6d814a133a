"""plot_history: a Trainer's loss and accuracy curves as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def require_matplotlib() -> Any:
    """matplotlib's pyplot on the Agg backend (files only), or ModuleNotFoundError saying how
    to install it."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "plotting needs matplotlib: pip install 'netcl[plot]'", name="matplotlib"
        ) from error
    matplotlib.use("Agg")  # no window, no display: works on a server and in CI
    return importlib.import_module("matplotlib.pyplot")


def plot_history(history: Sequence[Mapping[str, float]], path: str | Path,
                 title: str = "") -> None:
    """Draw ``history`` (``Trainer.history``) to ``path``: loss per epoch (training, and
    validation if present) on the left, validation accuracy on the right."""
    if not history:
        raise ValueError("plot_history: the history is empty (train for an epoch first)")
    plt = require_matplotlib()
    epochs = [int(record["epoch"]) for record in history]
    has_accuracy = all("val_accuracy" in record for record in history)
    ticker = importlib.import_module("matplotlib.ticker")
    figure, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(10 if has_accuracy else 5, 4),
                                squeeze=False)
    loss_axis = axes[0][0]
    loss_axis.plot(epochs, [r["loss"] for r in history], marker="o", label="training")
    if all("val_loss" in record for record in history):
        loss_axis.plot(epochs, [r["val_loss"] for r in history], marker="o", label="validation")
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_axis.set_yscale("log")
    loss_axis.legend()
    loss_axis.grid(alpha=0.3)
    if has_accuracy:
        accuracy_axis = axes[0][1]
        accuracy_axis.plot(epochs, [r["val_accuracy"] for r in history], marker="o",
                           color="tab:green")
        accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
        accuracy_axis.grid(alpha=0.3)
    for axis in axes[0]:
        axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # epochs are whole
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(Path(path), dpi=100)
    plt.close(figure)
