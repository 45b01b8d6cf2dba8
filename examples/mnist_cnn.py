"""Train SimpleConvNet on the bundled MNIST images (images kept as 1x28x28).

    python examples/mnist_cnn.py              # 97.15% test accuracy after 4 epochs (~50 s on 2 cores)
    python examples/mnist_cnn.py --quick      # a few seconds, for a smoke test
"""
import argparse

import tinyai
from tinyai import losses, nn, optim
from tinyai.data import ArrayDataset, MnistDataSet
from tinyai.training import AccuracyEval, Model, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--quick", action="store_true", help="400 images and 1 epoch")
    args = parser.parse_args()

    tinyai.seed(0)
    data = MnistDataSet(batch_size=args.batch_size, flatten=False)     # x: (N, 1, 28, 28)
    epochs = args.epochs
    if args.quick:
        data = ArrayDataset(data.x[:400], data.y[:400], args.batch_size)
        epochs = min(epochs, 1)

    model = Model("mnist-cnn", nn.SimpleConvNet())
    with Trainer(epochs, evaluator=AccuracyEval()) as trainer:
        trainer.init(data, model, losses.SoftmaxCrossEntropy(), optim.Adam(model, lr=args.lr))
        history = trainer.train()
    print(f"test accuracy: {history['test_accuracy'][-1]:.4f}")


if __name__ == "__main__":
    main()
