"""Run by tests/parallel/test_mpi.py under ``mpiexec -n K``: data-parallel training over MPI ranks.

    mpiexec -n 2 python -m tests.parallel.mpi_train_script SCENARIO OUT_DIR

Every rank runs this whole file (SPMD) and writes what it ended with to
OUT_DIR/<scenario>.rank<k>.npz; the test compares those files with
single-thread training done in the test process, from the same set-up
functions below. Scenarios:

* ``train``: a few DataParallel(backend="mpi") steps of an MLP and of a CNN with batch
  norm and dropout, then two epochs of ``Trainer(parallel_backend="mpi")``
  with line progress (to OUT_DIR/stdout.rank<k>) and a checkpoint per rank
  path (only rank 0 may write one);
* ``single``: the Trainer part of ``train``, started without mpiexec (one
  rank: it must fall back to single-thread training);
* ``fail``: rank 1's shard raises in an MLP step (no batch norm): every rank
  must raise the same WorkerError, which it writes down, and exit 0;
* ``fail-bn``: rank 1's shard raises in the loss, after synchronised batch
  norm already ran: the job must be aborted, not hang;
* ``fail-early``: rank 1 raises before its first batch-norm call, while rank
  0 waits inside it: rank 1 must give up after its failure timeout.
"""
import json
import sys
from pathlib import Path

import numpy as np

import tinyai as ta
import tinyai.functions as F
from tinyai import nn, optim
from tinyai.backend import default_dtype
from tinyai.data import ArrayDataset
from tinyai.parallel import DataParallel, WorkerError
from tinyai.training import AccuracyEval, Trainer

from tests.parallel.models import ClassLoss, ExplodingLoss, MeanSquared, TwoLayerNet

STEPS = 3
LR = 0.1


class ConvNormDropoutNet(nn.Block):
    """conv -> batch norm -> relu -> max pool -> dropout(0.3) -> linear, for 1x6x6 images."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, pad=1)
        self.norm = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(3 * 3 * 3, 4)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.norm(self.conv(x))), 2)
        return self.fc(self.drop(F.flatten(h)))


class FailBeforeNorm(ConvNormDropoutNet):
    """Raises before batch norm on a shard whose first pixel is below -100."""

    def forward(self, x):
        if float(x.data.reshape(-1)[0]) < -100:
            raise ValueError("failing before batch norm")
        return super().forward(x)


class ExplodingClassLoss(ClassLoss):
    """Class loss that raises on a shard whose first label is 3."""

    def loss(self, target, prediction):
        if int(target.data.reshape(-1)[0]) == 3:
            raise ValueError("exploding class loss: first label is 3")
        return super().loss(target, prediction)


def mlp_setup():
    """(model, loss, batches): float64, 10-example batches (uneven shards on 3 ranks), then a
    2-example batch (fewer examples than 3 ranks: every rank computes it whole)."""
    with default_dtype(np.float64):
        ta.seed(7)
        model = TwoLayerNet()
    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((n, 6)), rng.standard_normal((n, 3))) for n in [10] * STEPS + [2]]
    return model, MeanSquared(), batches


def cnn_setup(cls=ConvNormDropoutNet):
    """(model, loss, batches): float64 images, 7-example batches (uneven shards)."""
    with default_dtype(np.float64):
        ta.seed(11)
        model = cls()
    rng = np.random.default_rng(4)
    batches = [(rng.standard_normal((7, 1, 6, 6)), rng.integers(0, 4, 7)) for _ in range(STEPS)]
    return model, ClassLoss(), batches


def trainer_setup():
    """(model, dataset): 30 images in 4 classes, batches of 8 (the data set holds some back for testing)."""
    with default_dtype(np.float64):
        ta.seed(3)
        model = ConvNormDropoutNet()
    rng = np.random.default_rng(5)
    x, labels = rng.standard_normal((30, 1, 6, 6)), rng.integers(0, 4, 30)
    return model, ArrayDataset(x, labels, batch_size=8)


def sgd(model):
    for p in model.params():
        p.data -= LR * p.grad.data


def state_of(model, prefix):
    """Parameters and buffers as a flat dict of arrays, keys prefixed."""
    state = {f"{prefix}param:{name}": p.data for name, p in model.named_params()}
    state.update({f"{prefix}buffer:{name}": a for name, a in model.named_buffers()})
    return state


def run_engine_steps(setup, prefix, engine_cls):
    """STEPS data-parallel SGD steps; the parameters, buffers, losses and the stream's next draw."""
    model, loss, batches = setup()
    engine = engine_cls(model, loss)
    ta.seed(99)  # dropout masks come from here
    losses = []
    try:
        for x, y in batches:
            outcome = engine.compute_gradients(x, y)
            losses.append(outcome.loss)
            sgd(model)
    finally:
        engine.shutdown()
    state = state_of(model, prefix)
    state[f"{prefix}losses"] = np.array(losses)
    state[f"{prefix}next_draw"] = np.array(ta.backend.get_rng().random())
    return state


def run_trainer(out, rank, **parallel):
    """Two epochs of Trainer with line progress written to ``sys.stdout``; its final state."""
    model, dataset = trainer_setup()
    ta.seed(123)
    with Trainer(2, evaluator=AccuracyEval(), progress=False,
                 checkpoint_path=out / f"checkpoint.rank{rank}.npz", **parallel) as trainer:
        trainer.init(dataset, model, ClassLoss(), optim.SGD(model, lr=LR))
        history = trainer.train()
        workers = trainer.get_parallel_thread_count()
        enabled = trainer.is_parallel_training_enabled()
    state = state_of(model, "trainer.")
    state["trainer.history"] = np.array(json.dumps(history))
    state["trainer.workers"] = np.array(workers)
    state["trainer.enabled"] = np.array(enabled)
    return state


def communicator_sums(rank):
    """MpiCommunicator.allreduce of an int, a NumPy int, a float and a float32 array, with their types."""
    from mpi4py import MPI

    from tinyai.parallel.mpi import MpiCommunicator

    comm = MpiCommunicator(MPI.COMM_WORLD)
    sums = {"int": comm.allreduce(rank + 1), "np_int": comm.allreduce(np.int64(rank + 1)),
            "float": comm.allreduce(0.5)}
    result = {f"comm.{name}": np.array(value) for name, value in sums.items()}
    result.update({f"comm.{name}_type": np.array(type(value).__name__) for name, value in sums.items()})
    result["comm.array"] = comm.allreduce(np.arange(6, dtype=np.float32).reshape(2, 3) * (rank + 1))
    return result


def main(scenario, out):
    from mpi4py import MPI

    from tinyai.parallel.executor.mpi import MpiExecutor

    def mpi_engine(model, loss, **kwargs):
        return DataParallel(model, loss, backend="mpi", **kwargs)

    rank = MPI.COMM_WORLD.Get_rank()
    out = Path(out)
    result = {}
    if scenario == "train":
        result.update(communicator_sums(rank))
        result.update(run_engine_steps(mlp_setup, "mlp.", mpi_engine))
        result.update(run_engine_steps(cnn_setup, "cnn.", mpi_engine))
        sys.stdout = open(out / f"stdout.rank{rank}", "w")  # the Trainer's progress goes here
        result.update(run_trainer(out, rank, enable_parallel=True, parallel_backend="mpi"))
        sys.stdout.close()
        sys.stdout = sys.__stdout__
    elif scenario == "single":  # started without mpiexec: one rank
        sys.stdout = open(out / "stdout.rank0", "w")
        result.update(run_trainer(out, rank, enable_parallel=True, parallel_backend="mpi"))
        sys.stdout.close()
        sys.stdout = sys.__stdout__
    elif scenario == "fail":
        model, _, batches = mlp_setup()
        x, y = batches[0]
        y = np.abs(y)
        y[5, 0] = -1.0  # rank 1's shard starts at row 5 on two ranks
        engine = mpi_engine(model, ExplodingLoss())
        try:
            engine.compute_gradients(x, y)
            result["error"] = np.array("")
        except WorkerError as error:
            result["error"] = np.array(str(error))
            result["worker_id"] = np.array(error.worker_id)
        engine.shutdown()
        # on_error="skip": the step goes on with rank 0's shard alone.
        engine = mpi_engine(model, ExplodingLoss(), on_error="skip")
        outcome = engine.compute_gradients(x, y)
        engine.shutdown()
        result["skip.counts"] = np.array([outcome.ok_shards, outcome.failed_shards, outcome.batch_size])
        result["skip.loss"] = np.array(outcome.loss)
        result.update({f"skip.grad:{name}": p.grad.data for name, p in model.named_params()})
    elif scenario in ("fail-bn", "fail-early"):
        model, _, batches = cnn_setup(FailBeforeNorm)
        x, labels = batches[0]
        labels = labels % 3
        if scenario == "fail-bn":
            labels[4] = 3  # rank 1's shard (rows 4..6) fails in the loss, after batch norm
        else:
            x[4, 0, 0, 0] = -1000.0  # rank 1's shard fails before its batch norm
        engine = DataParallel(model, ExplodingClassLoss(),
                              executor=MpiExecutor(model, ExplodingClassLoss(), failure_timeout=1.0))
        engine.compute_gradients(x, labels)
        result["error"] = np.array("no failure")  # never reached: the job is aborted
    else:
        raise SystemExit(f"mpi_train_script: unknown scenario {scenario!r}")
    np.savez(out / f"{scenario}.rank{rank}.npz", **result)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
