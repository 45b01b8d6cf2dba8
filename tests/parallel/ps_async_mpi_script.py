"""Run by tests/parallel/test_ps_async_mpi.py under ``mpiexec -n 3``: asynchronous parameter servers on MPI.

    mpiexec -n 3 python -m tests.parallel.ps_async_mpi_script OUT_DIR train
    mpiexec -n 3 python -m tests.parallel.ps_async_mpi_script OUT_DIR fail

``train``: rank 0 is the server (num_servers=1) and ranks 1 and 2 the workers. Every rank trains the
same MNIST MLP on 1,000 bundled images for three epochs, once with ps_mode="async" (pushes compressed
to float16) and once with
ps_mode="stale", staleness=1 and worker 0 (rank 1) slowed down by 5 ms a step, then asks for three
servers on three ranks (no worker left: refused). Each rank writes its parameters, losses, test
accuracy, parallel_stats() and the refusal's message to OUT_DIR/rank<k>.npz. Then two servers (ranks 0
and 1) and one worker train async and save a checkpoint (OUT_DIR/two_servers.npz).

``fail``: the same job with a loss that raises on the short last batch (index 5 of 6, worker 1, rank
2); every rank must end with the WorkerError naming it.
"""
import sys
from pathlib import Path

import numpy as np

import tinyai as ta
from tinyai import losses, nn
from tinyai.data import ArrayDataset
from tinyai.data.mnist import MnistDataSet
from tinyai.optim import SGD, Momentum
from tinyai.training import AccuracyEval, Model, Trainer
from tinyai.training.recipes import FixedSplit

from tests.parallel.models import ShortBatchLoss, TwoLayerNet

EPOCHS = 3
STRAGGLER = 0.005


def mnist_data():
    mnist = MnistDataSet(100)
    mnist.prepare()
    train, test = mnist.get_train_dataset(), mnist.get_test_dataset()
    return FixedSplit(ArrayDataset(train.x[:1000], train.y[:1000], 25), ArrayDataset(test.x[:1000], test.y[:1000], 500))


def train(parallel=True, checkpoint=None, **options):
    """Three epochs of the MNIST MLP with parameter servers on the MPI ranks (or, ``parallel=False``, in
    one process); (model, history, stats, optimizer). ``checkpoint``: a file to save at the end."""
    ta.seed(0)
    model = Model("mnist", nn.MlpBlock("mlp", 25, "relu", 784, 32, 10))
    trainer = Trainer(EPOCHS, evaluator=AccuracyEval(), progress=None)
    if parallel:
        trainer.configure_parallel_training(True, 0, "mpi", parallel_strategy="parameter_server", **options)
    trainer.init(mnist_data(), model, losses.SoftmaxCrossEntropy(), Momentum(model, lr=0.05, momentum=0.5))
    with trainer:
        history = trainer.train()
        stats = trainer.parallel_stats() if parallel else {}
        if checkpoint is not None:
            trainer.save_checkpoint(checkpoint)  # every rank calls it; rank 0 writes
    return model, history, stats, trainer.optimizer


def main(out, what):
    from tinyai.parallel.mpi import load_mpi

    rank = load_mpi().COMM_WORLD.Get_rank()
    if what == "fail":
        x = np.random.default_rng(3).standard_normal((50, 6))
        model = TwoLayerNet()
        trainer = Trainer(1, progress=None)
        trainer.configure_parallel_training(True, 0, "mpi", parallel_strategy="parameter_server", ps_mode="stale",
                                            staleness=0)
        trainer.init(ArrayDataset(x, x[:, :3], batch_size=7), model, ShortBatchLoss(), SGD(model, lr=0.1))
        trainer.train(shuffle=False)  # raises WorkerError on every rank
        return
    results = {}
    for name, options in {"async": dict(ps_mode="async", compression="fp16"),
                          "stale": dict(ps_mode="stale", staleness=1, straggler=(0, STRAGGLER))}.items():
        model, history, stats, optimizer = train(**options)
        results.update({f"{name}.param.{key}": p.data for key, p in model.named_params()})
        results[f"{name}.loss"] = np.array(history["loss"])
        results[f"{name}.test_accuracy"] = np.array(history["test_accuracy"])
        results.update({f"{name}.stats.{key}": np.array(stats[key])
                        for key in ("bytes_sent", "bytes_dense", "updates", "exchanges", "wait_time_s")})
        hist = stats["staleness_histogram"]
        results[f"{name}.staleness"] = np.array(sorted(hist.items()), dtype=np.int64).reshape(-1, 2)
        # The momentum of each parameter: moved only on the rank that serves it (rank 0).
        results.update({f"{name}.velocity.{key}": next(iter(slots.values())) for key, slots in optimizer.state.items()})
    # Two servers (ranks 0 and 1) and one worker (rank 2): asynchronous training with a single worker is
    # sequential training, pulled from and pushed to two ranks; the checkpoint gathers both servers' state.
    model, history, _, _ = train(ps_mode="async", num_servers=2, checkpoint=Path(out) / "two_servers.npz")
    results.update({f"two.param.{key}": p.data for key, p in model.named_params()})
    results["two.loss"] = np.array(history["loss"])
    try:
        train(ps_mode="async", num_servers=3)
        results["refusal"] = np.array("")
    except ValueError as error:
        results["refusal"] = np.array(str(error))
    np.savez(Path(out) / f"rank{rank}.npz", **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
