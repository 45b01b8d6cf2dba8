"""Run by tests/parallel/test_ps_mpi.py under ``mpiexec -n 3``: synchronous parameter servers on MPI ranks.

    mpiexec -n 3 python -m tests.parallel.ps_mpi_script OUT_DIR

Every rank trains the same float64 MLP for two epochs with
``parallel_strategy="parameter_server", ps_mode="sync", num_servers=2``
(servers are ranks 0 and 1, with momentum, whose state only they keep) and
writes its parameters and ``parallel_stats()`` to OUT_DIR/rank<k>.npz.
Then the same training is interrupted: one epoch with a checkpoint
(OUT_DIR/ps.ckpt.npz, written by rank 0 with the servers' state gathered),
and a new Trainer on every rank resumes from it for the second epoch; its
parameters go to the same file as ``resumed.<name>``. The same again with
``ps_mode="async"`` (ranks 0 and 1 serve, rank 2 is the only worker):
OUT_DIR/ps_async.ckpt.npz and ``async_resumed.<name>``.
"""
import sys
from pathlib import Path

import numpy as np

import tinyai as ta
from tinyai.backend import default_dtype
from tinyai.data import ArrayDataset
from tinyai.optim import Momentum
from tinyai.training import Trainer

from tests.parallel.models import MeanSquared, TwoLayerNet

EPOCHS = 2


def train(parallel, epochs=EPOCHS, checkpoint=None, resume=None, mode="sync"):
    """``epochs`` epochs of the float64 MLP (writing ``checkpoint`` after each, or first resuming
    from ``resume``, then training up to EPOCHS); the model, the trainer's stats and its optimizer."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((60, 6)), rng.standard_normal((60, 3))
    with default_dtype(np.float64):
        ta.seed(11)
        model = TwoLayerNet()
        options = ({"enable_parallel": True, "parallel_backend": "mpi", "parallel_strategy": "parameter_server",
                    "num_servers": 2, "ps_mode": mode} if parallel else {})
        setup = dict(dataset=ArrayDataset(x, y, batch_size=10), model=model, loss=MeanSquared(),
                     optimizer=Momentum(model, lr=0.1))
        if resume is not None:
            trainer = Trainer.resume(resume, max_epoch=EPOCHS, progress=None, eval_every=0, **setup, **options)
        else:
            trainer = Trainer(epochs, progress=None, eval_every=0, checkpoint_path=checkpoint, **setup, **options)
        with trainer:
            trainer.train(shuffle=False)
            stats = trainer.parallel_stats()
    return model, stats, trainer.optimizer


def main(out):
    from tinyai.parallel.mpi import load_mpi

    rank = load_mpi().COMM_WORLD.Get_rank()
    model, stats, optimizer = train(True)
    results = {f"param.{name}": p.data for name, p in model.named_params()}
    results.update({f"stats.{key}": np.array(stats[key]) for key in ("bytes_sent", "updates", "exchanges")})
    # The momentum of each parameter: moved only on the rank that serves it.
    results.update({f"velocity.{name}": next(iter(slots.values())) for name, slots in optimizer.state.items()})
    checkpoint = Path(out) / "ps.ckpt.npz"
    train(True, epochs=1, checkpoint=checkpoint)
    load_mpi().COMM_WORLD.Barrier()  # rank 0 has written the checkpoint before anyone reads it
    resumed, _, _ = train(True, resume=checkpoint)
    results.update({f"resumed.{name}": p.data for name, p in resumed.named_params()})
    # ps_mode="async": ranks 0 and 1 serve, rank 2 is the one worker (so it trains like one process).
    load_mpi().COMM_WORLD.Barrier()
    checkpoint = Path(out) / "ps_async.ckpt.npz"
    train(True, epochs=1, checkpoint=checkpoint, mode="async")
    load_mpi().COMM_WORLD.Barrier()
    resumed, _, _ = train(True, resume=checkpoint, mode="async")
    results.update({f"async_resumed.{name}": p.data for name, p in resumed.named_params()})
    np.savez(Path(out) / f"rank{rank}.npz", **results)


if __name__ == "__main__":
    main(sys.argv[1])
