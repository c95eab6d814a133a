"""A character-level GPT trained on the source of Python's own standard library.

No download: the text is the source of a few standard-library modules that ship
with every Python. The model is a token and a position embedding, a stack of
pre-norm causal ``TransformerEncoderLayer`` blocks (netcl's fused attention
inside), a LayerNorm and a linear head; each step is jitted (``netcl.jit``).
It prints the validation loss against a unigram model's (each character's
frequency in the training text), the baseline a model must beat to have
learned anything about order.

    python examples/gpt.py                       # default: 2 layers, d_model 64, 4 heads
    python examples/gpt.py --steps 60 --layers 1 --d-model 32 --context 32   # CI's setting
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import textwrap
import time
from collections import Counter

import numpy as np

import netcl.autograd as ag
import netcl.nn as nn
from netcl.core.tensor import Tensor, from_numpy, manual_seed, ops
from netcl.jit import jit
from netcl.optim import AdamW, AdamW8bit

SOURCES = (textwrap, json.decoder, inspect)


class GPT(nn.Module):
    def __init__(self, vocab: int, context: int, d_model: int, heads: int, layers: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(None, vocab, d_model)
        self.positions = nn.Embedding(None, context, d_model)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(None, d_model, heads, 4 * d_model, dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(layers)])
        self.norm = nn.LayerNorm(None, d_model)
        self.head = nn.Linear(None, d_model, vocab)
        self.register_buffer("where", from_numpy(np.arange(context, dtype=np.int64)),
                             persistent=False)

    def forward(self, tokens: Tensor) -> Tensor:
        x = ops.add(self.tokens(tokens), self.positions(self.where))
        for block in self.blocks:
            x = block(x, is_causal=True)
        out: Tensor = self.head(self.norm(x))
        return out


def unigram_loss(train: np.ndarray, valid: np.ndarray, vocab: int) -> float:
    """Cross-entropy (nats a character) on ``valid`` of character frequencies in ``train``
    (add-one smoothed, so a character unseen in training costs finitely)."""
    counts = np.bincount(train, minlength=vocab) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(-log_p[valid].mean())


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--optimizer", choices=("adamw", "adamw8bit"), default="adamw",
                        help="AdamW, or AdamW with 8-bit state (AdamW8bit)")
    args = parser.parse_args(argv)

    text = "".join(inspect.getsource(module) for module in SOURCES)
    chars = sorted(Counter(text))
    index = {c: i for i, c in enumerate(chars)}
    data = np.array([index[c] for c in text], dtype=np.int64)
    split = int(0.9 * len(data))
    train, valid = data[:split], data[split:]
    rng = np.random.default_rng(0)

    manual_seed(0)
    model = GPT(len(chars), args.context, args.d_model, args.heads, args.layers)
    kind = AdamW8bit if args.optimizer == "adamw8bit" else AdamW
    optimizer = kind(model.parameters(), lr=args.lr, weight_decay=0.01)
    vocab = len(chars)

    def batch(source: np.ndarray) -> Tensor:
        starts = rng.integers(0, len(source) - args.context - 1, args.batch)
        return from_numpy(np.stack([source[s:s + args.context + 1] for s in starts]))

    def loss_of(tokens: Tensor) -> Tensor:
        logits = model(tokens[:, :-1])
        return nn.cross_entropy(ops.reshape(logits, (-1, vocab)),
                                ops.reshape(tokens[:, 1:], (-1,)))

    @jit
    def step(tokens: Tensor) -> Tensor:
        with ag.Tape() as tape:
            loss = loss_of(tokens)
        tape.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        return loss

    @jit
    def evaluate(tokens: Tensor) -> Tensor:
        with ag.no_grad():
            return loss_of(tokens)

    start = time.perf_counter()
    for i in range(args.steps):
        loss = step(batch(train))
        if (i + 1) % max(args.steps // 5, 1) == 0:
            print(f"step {i + 1:5d}  train loss {loss.item():.3f}", flush=True)
    model.eval()
    valid_loss = float(np.mean([evaluate(batch(valid)).item() for _ in range(8)]))
    baseline = unigram_loss(train, valid, vocab)
    seconds = time.perf_counter() - start
    print(f"validation loss {valid_loss:.3f} nats/char; unigram baseline {baseline:.3f}; "
          f"{args.steps} steps in {seconds:.1f} s ({math.exp(valid_loss):.1f} perplexity)")
    return {"valid_loss": valid_loss, "unigram": baseline, "seconds": seconds}


if __name__ == "__main__":
    main()
