"""Run by tests/parallel/test_compressed_mpi.py under ``mpiexec -n 3``: compressed and ring
all-reduce training, compressed pushes to parameter servers on ranks 0 and 1, and local SGD with and
without compressed deltas, with the Trainer over MPI ranks.

    mpiexec -n 3 python -m tests.parallel.compressed_mpi_script OUT_DIR

Every rank trains the same float64 MLP for two epochs with each setting of
``SETTINGS`` and writes its parameters and ``parallel_stats()`` to
OUT_DIR/rank<k>.npz. The test trains the same set-up on 3 threads in its own
process: every run must give the same parameters (each worker k
compresses its own shard with ``compressor.for_worker(k)``, the decoded
payloads are added in worker order, whatever carries them; the ring
sends the same chunks in the same order over threads and MPI; local SGD's
replicas are averaged in worker order).
"""
import sys
from pathlib import Path

import numpy as np

import tinyai as ta
from tinyai.backend import default_dtype
from tinyai.data import ArrayDataset
from tinyai.optim import SGD
from tinyai.parallel.compression import ErrorFeedback, TopK
from tinyai.training import Trainer

from tests.parallel.models import MeanSquared, TwoLayerNet

EPOCHS = 2


def settings():
    """name -> Trainer keyword arguments (fresh compressor objects each call)."""
    return {
        "topk_ef": {"compression": ErrorFeedback(TopK(0.2))},
        "int8": {"compression": "int8"},
        "ring": {"allreduce_algorithm": "ring"},
        "ps_topk_ef": {"parallel_strategy": "parameter_server", "num_servers": 2,
                       "compression": ErrorFeedback(TopK(0.2))},
        "local_sgd": {"parallel_strategy": "local_sgd", "sync_every": 2},
        "local_sgd_topk_ef": {"parallel_strategy": "local_sgd", "sync_every": 2,
                              "compression": ErrorFeedback(TopK(0.2))},
    }


def train(name, backend, workers=3):
    """Two epochs of the float64 MLP with setting ``name``; the model and the trainer's stats."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((60, 6)), rng.standard_normal((60, 3))
    with default_dtype(np.float64):
        ta.seed(11)
        model = TwoLayerNet()
        dataset = ArrayDataset(x, y, batch_size=12)
        extra = settings()[name] if backend != "single" else {}
        trainer = Trainer(EPOCHS, progress=None, eval_every=0, enable_parallel=backend != "single",
                          thread_count=workers, parallel_backend="thread" if backend == "single" else backend,
                          dataset=dataset, model=model, loss=MeanSquared(), optimizer=SGD(model, lr=0.1),
                          **extra)
        with trainer:
            trainer.train(shuffle=False)
            stats = trainer.parallel_stats()
    return model, stats


def main(out):
    from tinyai.parallel.mpi import load_mpi

    rank = load_mpi().COMM_WORLD.Get_rank()
    results = {}
    for name in settings():
        model, stats = train(name, "mpi")
        for pname, p in model.named_params():
            results[f"{name}.{pname}"] = p.data
        for key in ("bytes_sent", "bytes_dense", "updates", "exchanges"):
            results[f"{name}.stats.{key}"] = np.array(stats[key])
    np.savez(Path(out) / f"rank{rank}.npz", **results)


if __name__ == "__main__":
    main(sys.argv[1])
