"""The ``tinyai`` command line."""
from __future__ import annotations

import argparse
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyai", description="tinyai: deep learning from scratch on NumPy")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the autograd demo (Newton's method with second derivatives)")
    demo.set_defaults(run=_autograd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
