"""Beyond synchronous all-reduce: parameter servers and local SGD with a straggler.

On the MNIST MLP (784-128-64-10, the bundled 8,000 / 2,000 split, SGD lr 0.1,
batches of 64, 2 thread workers, the same seed for every run), with worker 1
made a straggler (5 ms added to each of its steps, by a loss that sleeps on
that worker's thread, the same mechanism for every row): test accuracy after
the same number of epochs, bytes sent per epoch (all workers together, by the
wire models of ``tinyai.parallel.stats``) and wall time per epoch, for

* synchronous all-reduce (the baseline);
* parameter server, ps_mode "sync", "async" and "stale" (s = 2), 1 server;
* local SGD with sync_every H = 4 and 16, and H = 4 with compressed
  parameter deltas (top-k 1% with error feedback, int8);
* all-reduce and the three parameter-server modes again on 2 worker
  processes (rows ".../proc"; the straggler is worker process 1), where
  asynchronous servers answer the workers from a thread of the master.

Target (issue 10): with the straggler, asynchronous PS faster per epoch than
synchronous all-reduce. Wall times are from a shared, loaded machine: read
them as ratios between the rows of one run; bytes and accuracies do not
depend on the machine.
"""
from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

SECTION = "beyond_sync"
TITLE = "Parameter servers and local SGD with a 5 ms straggler (MNIST MLP accuracy, bytes, time)"

EPOCHS = 3
STRAGGLER_SECONDS = 0.005
STRAGGLER_THREAD = "tinyai-worker-1"

CONFIGS: dict[str, dict[str, Any]] = {
    "allreduce": {},
    "PS sync": {"parallel_strategy": "parameter_server", "ps_mode": "sync"},
    "PS async": {"parallel_strategy": "parameter_server", "ps_mode": "async"},
    "PS stale s=2": {"parallel_strategy": "parameter_server", "ps_mode": "stale", "staleness": 2},
    "local SGD H=4": {"parallel_strategy": "local_sgd", "sync_every": 4},
    "local SGD H=16": {"parallel_strategy": "local_sgd", "sync_every": 16},
    # Compressed deltas (top-k 1% with error feedback; int8): the bytes of an average shrink again.
    "local SGD H=4 topk": {"parallel_strategy": "local_sgd", "sync_every": 4, "compression": "topk"},
    "local SGD H=4 int8": {"parallel_strategy": "local_sgd", "sync_every": 4, "compression": "int8"},
    # The same on worker processes (the straggler is worker process 1).
    "allreduce/proc": {"parallel_backend": "process"},
    "PS sync/proc": {"parallel_backend": "process", "parallel_strategy": "parameter_server", "ps_mode": "sync"},
    "PS async/proc": {"parallel_backend": "process", "parallel_strategy": "parameter_server", "ps_mode": "async"},
    "PS stale s=2/proc": {"parallel_backend": "process", "parallel_strategy": "parameter_server",
                          "ps_mode": "stale", "staleness": 2},
}


class StragglerLoss:
    """The MNIST loss, slowed down by ``seconds`` on one worker thread or worker process (the executors
    name both "tinyai-worker-k"; every strategy's steps call the loss)."""

    def __init__(self, loss: Any, seconds: float, thread_name: str = STRAGGLER_THREAD) -> None:
        self.inner, self.seconds, self.thread_name = loss, seconds, thread_name

    def loss(self, target: Any, prediction: Any) -> Any:
        if self.thread_name in (threading.current_thread().name, multiprocessing.current_process().name):
            time.sleep(self.seconds)
        return self.inner.loss(target, prediction)


def train(options: dict[str, Any], epochs: int, limit: int | None, delay: float = STRAGGLER_SECONDS) -> dict[str, Any]:
    """One MNIST MLP run on two workers with the parallel ``options`` (``delay``: the straggler's
    seconds per step, 0 for none); its accuracy, bytes, time and parallel statistics per epoch."""
    import tinyai as ta
    from tinyai.training import Trainer
    from tinyai.training.recipes import Settings, build_mnist_mlp

    ta.seed(0)
    setup = build_mnist_mlp(Settings(epochs=epochs, batch_size=64, lr=0.1, optimizer="sgd", limit=limit))
    trainer = Trainer(epochs, evaluator=setup.evaluator, progress=None, eval_every=0)
    options = dict(options)
    trainer.configure_parallel_training(True, 2, options.pop("parallel_backend", "thread"), **options)
    loss = StragglerLoss(setup.loss, delay) if delay else setup.loss
    trainer.init(setup.dataset, setup.model, loss, setup.optimizer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    stats = trainer.parallel_stats()
    accuracy = trainer.evaluate()["test_accuracy"]
    trainer.shutdown()
    return {"accuracy": accuracy, "bytes_sent_per_epoch": stats["bytes_sent"] / epochs,
            "bytes_dense_per_epoch": stats["bytes_dense"] / epochs,
            "seconds_per_epoch": seconds / epochs, "updates": stats["updates"],
            "wait_time_s": stats["wait_time_s"], "staleness_histogram": stats["staleness_histogram"]}


def run(quick: bool = False) -> dict[str, Any]:
    epochs, limit = (1, 1000) if quick else (EPOCHS, None)
    runs = {name: train(options, epochs, limit) for name, options in CONFIGS.items()}
    return {"epochs": epochs, "workers": 2, "limit": limit, "straggler_s": STRAGGLER_SECONDS, "runs": runs}


def _size(nbytes: float) -> str:
    return f"{nbytes / (1 << 20):.1f} MB"


def report(data: dict[str, Any]) -> str:
    lines = [f"MNIST MLP, {data['epochs']} epochs, {data['workers']} thread workers, worker 1 "
             f"+{data['straggler_s'] * 1e3:.0f} ms per step (shared machine: compare rows of one run)",
             f"{'strategy':>18} {'test acc':>9} {'sent/epoch':>11} {'s/epoch':>8} {'vs allreduce':>13} "
             f"{'max staleness':>14}"]
    base = data["runs"]["allreduce"]["seconds_per_epoch"]
    for name, r in data["runs"].items():
        lag = max(r["staleness_histogram"], default=None)
        lines.append(f"{name:>18} {r['accuracy'] * 100:8.2f}% {_size(r['bytes_sent_per_epoch']):>11} "
                     f"{r['seconds_per_epoch']:8.2f} {r['seconds_per_epoch'] / base:12.2f}x "
                     f"{'-' if lag is None else lag:>14}")
    runs = data["runs"]
    ok = runs["PS async"]["seconds_per_epoch"] < runs["allreduce"]["seconds_per_epoch"]
    lines.append("target (issue 10): " + ("met    " if ok else "NOT MET") +
                 " async PS faster per epoch than synchronous all-reduce with the straggler")
    if "PS async/proc" in runs:
        ratio = runs["PS async/proc"]["seconds_per_epoch"] / runs["allreduce/proc"]["seconds_per_epoch"]
        lines.append(f"on worker processes: async PS takes {ratio:.2f}x the time of all-reduce per epoch")
    return "\n".join(lines)
