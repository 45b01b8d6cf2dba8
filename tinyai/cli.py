"""The ``tinyai`` command line."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence


def _autograd_demo(args: argparse.Namespace) -> int:
    """Newton's method on f(x) = x^4 - 2x^2 with derivatives from autograd."""
    import numpy as np

    from tinyai import Variable

    x = Variable(np.array(2.0), name="x")
    print("Newton's method on f(x) = x^4 - 2x^2, starting at x = 2")
    for step in range(8):
        y = x ** 4 - 2 * x ** 2
        y.backward(create_graph=True)
        gx = x.grad
        x.clear_grad()
        gx.backward()
        gx2 = x.grad
        print(f"  step {step}: x = {x.item():.10f}  f'(x) = {gx.item(): .3e}  f''(x) = {gx2.item():.4f}")
        x = Variable(x.data - gx.data / gx2.data, name="x")
    print(f"minimum at x = {x.item():.10f} (exact: 1)")
    return 0


class ArgumentProblem(SystemExit):
    """A command-line argument that cannot work: one line on stderr, exit status 2, no traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


def _check_output_file(option: str, path: str, formats: tuple[str, ...] | None = None) -> None:
    """``path`` can be written: its directory exists and is writable, it is not a directory,
    and (when ``formats`` is given) its extension is one of them."""
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    if os.path.isdir(target):
        raise ArgumentProblem(f"{option} {path}: is a directory; give a file name")
    if not os.path.isdir(directory):
        raise ArgumentProblem(f"{option} {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK) or (os.path.exists(target) and not os.access(target, os.W_OK)):
        raise ArgumentProblem(f"{option} {path}: not writable")
    if formats is not None:
        extension = os.path.splitext(target)[1].lstrip(".").lower()
        if extension not in formats:
            raise ArgumentProblem(f"{option} {path}: unknown image format {extension!r}; "
                                  f"use one of {', '.join(sorted(formats))}")


def _check_train_arguments(args: argparse.Namespace) -> None:
    """Everything that would otherwise fail only after training: checked first."""
    from tinyai.data.mnist import MNIST_FILES

    if args.device != "cpu":
        from tinyai.backend import as_device

        try:
            as_device(args.device)
        except (ValueError, RuntimeError) as error:
            raise ArgumentProblem(f"--device {args.device}: {error}") from None
    if args.plot:
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ArgumentProblem("--plot needs matplotlib: pip install 'tinyai-numpy[viz]'") from None
        formats = tuple(Figure().canvas.get_supported_filetypes())
        _check_output_file("--plot", args.plot, formats)
    for option, path in (("--save", args.save), ("--checkpoint", args.checkpoint)):
        if path:
            _check_output_file(option, path)
    if args.resume and not os.path.isfile(args.resume):
        raise ArgumentProblem(f"--resume {args.resume}: no such file")
    if args.limit is not None and args.limit < 1:
        raise ArgumentProblem(f"--limit must be >= 1, got {args.limit}")
    if args.data_dir is not None:
        if not args.example.startswith("mnist"):
            raise ArgumentProblem(f"--data-dir is for the MNIST examples, not {args.example}")
        if not os.path.isdir(args.data_dir):
            raise ArgumentProblem(f"--data-dir {args.data_dir}: no such directory")
        present = [role for role, name in MNIST_FILES.items()
                   if any(os.path.isfile(os.path.join(args.data_dir, name + ext)) for ext in ("", ".gz"))]
        if "test_images" not in present or "test_labels" not in present:
            raise ArgumentProblem(f"--data-dir {args.data_dir}: needs at least {MNIST_FILES['test_images']}(.gz) "
                                  f"and {MNIST_FILES['test_labels']}(.gz)")


def _train(args: argparse.Namespace) -> int:
    """Train one of the built-in examples and report its final test metric."""
    import time

    import tinyai
    from tinyai.training import Trainer
    from tinyai.training.recipes import Settings, get_recipe

    recipe = get_recipe(args.example)
    defaults = recipe.defaults
    settings = Settings(
        epochs=args.epochs if args.epochs is not None else defaults.epochs,
        batch_size=args.batch_size if args.batch_size is not None else defaults.batch_size,
        lr=args.lr if args.lr is not None else defaults.lr,
        optimizer=args.optimizer if args.optimizer is not None else defaults.optimizer,
        data_dir=args.data_dir, limit=args.limit)
    if settings.epochs < 1 or settings.batch_size < 1 or not settings.lr > 0:
        raise ArgumentProblem("--epochs and --batch-size must be >= 1 and --lr > 0")
    _check_train_arguments(args)
    tinyai.seed(args.seed)
    setup = recipe.build(settings)
    print(f"tinyai train --example {recipe.name}: {recipe.description}")
    print(f"  epochs {settings.epochs}, batch size {settings.batch_size}, optimizer {settings.optimizer}, "
          f"lr {settings.lr}, seed {args.seed}" + (f", first {settings.limit} samples" if settings.limit else ""),
          flush=True)
    start = time.perf_counter()
    with Trainer(settings.epochs, evaluator=setup.evaluator, progress=not args.no_progress,
                 checkpoint_path=args.checkpoint, device=args.device, precision=args.precision) as trainer:
        trainer.init(setup.dataset, setup.model, setup.loss, setup.optimizer)
        if args.resume:
            trainer.load_checkpoint(args.resume)
            print(f"  resumed from {args.resume} after epoch {trainer.epoch}")
        history = trainer.train()
    elapsed = time.perf_counter() - start
    if args.plot:
        trainer.monitor.plot(args.plot)
        print(f"training curves saved to {args.plot}")
    if args.save:
        setup.model.save(args.save)
        print(f"model weights saved to {args.save}")
    for name in ("test_accuracy", "test_loss"):
        values = [v for v in history.get(name, []) if v is not None]
        if values:
            shown = f"{100 * values[-1]:.2f}%" if name.endswith("accuracy") else f"{values[-1]:.4g}"
            print(f"final {name.replace('_', ' ')}: {shown}  (training took {elapsed:.1f}s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``tinyai`` command line: ``tinyai demo`` and ``tinyai train [options]``."""
    import tinyai

    parser = argparse.ArgumentParser(prog="tinyai", description="tinyai: deep learning from scratch on NumPy")
    parser.add_argument("--version", action="version", version=f"tinyai {tinyai.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the autograd demo (Newton's method with second derivatives)")
    demo.set_defaults(run=_autograd_demo)

    from tinyai.training.recipes import OPTIMIZERS, RECIPES

    examples = "\n".join(f"  {r.name:<10} {r.description} (default: {r.defaults.epochs} epochs, "
                         f"batch {r.defaults.batch_size}, {r.defaults.optimizer} lr {r.defaults.lr})"
                         for r in RECIPES.values())
    train = commands.add_parser(
        "train", help="train a built-in example (MNIST MLP/CNN, spiral, sine LSTM)",
        description="Train one of tinyai's example models, showing progress per epoch and the final "
                    "test metric. Options left out take the example's defaults.",
        epilog="examples:\n" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--example", choices=list(RECIPES), default="mnist-mlp",
                       help="which model and data set (default: mnist-mlp)")
    train.add_argument("--epochs", type=int, help="passes over the training data")
    train.add_argument("--batch-size", type=int, help="samples per mini-batch")
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument("--data-dir", help="directory with the four MNIST .gz files "
                                          "(default: the bundled 10,000 images)")
    train.add_argument("--limit", type=int, help="train on the first N samples only (and test on N/4): quick runs")
    train.add_argument("--no-progress", action="store_true", help="one line per epoch instead of a progress bar")
    train.add_argument("--plot", metavar="PNG", help="save the loss/accuracy curves to this file")
    train.add_argument("--save", metavar="NPZ", help="save the trained weights to this file")
    train.add_argument("--checkpoint", metavar="NPZ", help="write a resumable checkpoint here after each epoch")
    train.add_argument("--resume", metavar="NPZ", help="continue training from this checkpoint")
    train.add_argument("--device", default="cpu", help="where to train: cpu (default), gpu or gpu:N (needs CuPy)")
    train.add_argument("--precision", choices=("float32", "mixed"), default="float32",
                       help="mixed: float16 compute, float32 master weights, dynamic loss scaling")
    train.set_defaults(run=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named in ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ArgumentProblem as problem:
        # One line, like argparse's own errors, and no traceback: the user's input was wrong.
        sys.stderr.write(f"tinyai {args.command}: error: {problem.message}\n")
        raise

