"""Train TinyAI's MNIST MLP (784-128-64-10, ReLU) on the bundled MNIST images.

    python examples/mnist_mlp.py              # 10 epochs, ~93-94% test accuracy
    python examples/mnist_mlp.py --quick      # a few seconds, for a smoke test

The same run is ``tinyai train --example mnist-mlp``; this script writes the
set-up out with the public API.
"""
import argparse

import tinyai
from tinyai import losses, nn, optim
from tinyai.data import ArrayDataset, MnistDataSet
from tinyai.training import AccuracyEval, Model, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--quick", action="store_true", help="1,000 images and 2 epochs")
    parser.add_argument("--plot", help="save the training curves to this PNG")
    args = parser.parse_args()

    tinyai.seed(0)
    # 10,000 real MNIST images ship with tinyai: 8,000 for training, 2,000 for testing.
    data = MnistDataSet(batch_size=args.batch_size)
    epochs = args.epochs
    if args.quick:
        data = ArrayDataset(data.x[:1000], data.y[:1000], args.batch_size)   # its own 80/20 split
        epochs = min(epochs, 2)

    model = Model("mnist-mlp", nn.MlpBlock("mlp", args.batch_size, "relu", 784, 128, 64, 10))
    print(model.summary())

    with Trainer(epochs, evaluator=AccuracyEval()) as trainer:
        trainer.init(data, model, losses.SoftmaxCrossEntropy(), optim.SGD(model, lr=args.lr))
        history = trainer.train()

    print(f"test accuracy: {history['test_accuracy'][-1]:.4f}")
    if args.plot:
        trainer.monitor.plot(args.plot)


if __name__ == "__main__":
    main()
