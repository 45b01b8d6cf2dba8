"""Predict the next value of a sine wave from the 20 before it with an LSTM.

    python examples/sin_lstm.py               # 10 epochs, test MSE ~1e-5
    python examples/sin_lstm.py --quick       # 2 epochs on 300 windows
"""
import argparse

import numpy as np

import tinyai
from tinyai import losses, nn, optim
from tinyai.data import SinDataSet
from tinyai.training import Model, Predictor, RegressEval, Trainer


class SineRegressor(nn.Block):
    """x (N, T, 1) -> LSTM -> last hidden state (N, hidden) -> Linear -> (N, 1)."""

    def __init__(self, hidden_size: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden_size)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x):
        self.lstm.reset_state()          # every window is its own sequence
        h = self.lstm(x)                 # (N, T, hidden)
        return self.head(h[:, -1, :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--quick", action="store_true", help="2 epochs on 300 windows")
    args = parser.parse_args()

    tinyai.seed(0)
    data = SinDataSet(batch_size=32, num_samples=300 if args.quick else 1000, seq_len=20)
    epochs = min(args.epochs, 2) if args.quick else args.epochs
    model = Model("sin-lstm", SineRegressor(32))
    loss = losses.MeanSquaredLoss()
    with Trainer(epochs, evaluator=RegressEval(loss), progress=False) as trainer:
        trainer.init(data, model, loss, optim.Adam(model, lr=args.lr))
        history = trainer.train()

    # The next value after sin(0), sin(0.1), ..., sin(1.9) is sin(2.0) = 0.9093.
    window = np.sin(0.1 * np.arange(20, dtype=np.float32))[None, :, None]
    print(f"predicted next value {Predictor(None, model).predict(window).item():.4f}, exact {np.sin(2.0):.4f}")
    print(f"test loss: {history['test_loss'][-1]:.3g}")


if __name__ == "__main__":
    main()
