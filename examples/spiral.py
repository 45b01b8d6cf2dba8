"""Classify the three arms of a spiral with a small MLP (TinyAI's spiral example).

    python examples/spiral.py                 # 300 epochs, > 90% accuracy
    python examples/spiral.py --quick         # 30 epochs
    python examples/spiral.py --plot-boundary spiral.png
"""
import argparse

import numpy as np

import tinyai
from tinyai import losses, nn, optim
from tinyai.data import SpiralDataSet
from tinyai.training import AccuracyEval, ClassTranslator, Model, Predictor, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="30 epochs")
    args = parser.parse_args()

    tinyai.seed(0)
    batch_size = 30
    data = SpiralDataSet(batch_size)              # 300 points, 3 classes, 80/20 split
    model = Model("spiral", nn.MlpBlock("mlp", batch_size, "sigmoid", 2, 30, 3))
    epochs = min(args.epochs, 30) if args.quick else args.epochs

    # One summary line per epoch would be 300 lines: show a line every epoch only in quick mode.
    with Trainer(epochs, evaluator=AccuracyEval(), progress=False if args.quick else None,
                 eval_every=max(1, epochs // 10)) as trainer:
        trainer.init(data, model, losses.SoftmaxCrossEntropy(), optim.SGD(model, lr=args.lr))
        history = trainer.train()
    for epoch in range(0, epochs, max(1, epochs // 10)):
        print(f"epoch {epoch + 1:3d}: loss {history['loss'][epoch]:.4f}")

    # Inference on new points with the Predictor: class indices out.
    predictor = Predictor(ClassTranslator(), model)
    centre_and_far = np.array([[0.0, 0.0], [0.9, 0.1]], dtype=np.float32)
    print("classes of (0, 0) and (0.9, 0.1):", predictor.predict(centre_and_far).tolist())
    print(f"test accuracy: {history['test_accuracy'][-1]:.4f}")


if __name__ == "__main__":
    main()
