"""Programs every rank runs in the tensor-parallel tests (threads, processes and mpiexec).

They live in a module of their own so that ``spmd(..., backend="process")``
can import them by name in fresh processes. Each builds the *unsplit* tinyai
layers from a fixed seed (the same on every rank), splits them over the
communicator, runs both, and returns pairs (what the split layers gave,
what the unsplit ones gave) for the test to compare. The unsplit results
come from the ordinary layers alone, never from tinyai.parallel.tensor.
"""
import numpy as np

import tinyai.functions as F
from tinyai import nn, optim
from tinyai.autograd import Variable
from tinyai.backend import using_rng
from tinyai.nn.transformer import FeedForward, TransformerEncoderLayer
from tinyai.parallel.comm.payload import block_bounds
from tinyai.parallel.tensor import (
    ColumnParallelLinear,
    RowParallelLinear,
    TensorParallelAttention,
    TensorParallelMLP,
    copy_to_tensor_parallel,
    full_grads,
    full_optimizer_state,
    full_state_dict,
    gather_from_tensor_parallel,
    load_full_state_dict,
    reduce_from_tensor_parallel,
    scatter_to_tensor_parallel,
    tensor_parallel,
)
from tinyai.testing import gradcheck


def float64(layer):
    """``layer`` with every parameter in float64 (no global dtype switch: ranks may be threads)."""
    for p in layer.params():
        p.data = p.data.astype(np.float64)
    return layer


def build(seed, make):
    """``make()`` with the layer initialisers drawing from a stream of its own (the same on every rank)."""
    with using_rng(np.random.default_rng(seed)):
        return float64(make())


def grads_of(layer):
    return {name: p.grad.data.copy() for name, p in layer.named_params()}


def run(layer, inputs, gy, **kwargs):
    """Forward with ``inputs`` as fresh leaf Variables, backward with ``gy``: (output, input grads, param grads)."""
    layer.clear_grads()
    xs = [Variable(x.copy()) for x in inputs]
    y = layer(*xs, **kwargs)
    y.backward(Variable(gy.copy()))
    return y.data, [x.grad.data for x in xs]


def compare(out, name, split_layer, whole_layer, inputs, gy, **kwargs):
    """Record the split layer's output, input and parameter gradients beside the unsplit layer's."""
    y, gxs = run(split_layer, inputs, gy, **kwargs)
    y_ref, gxs_ref = run(whole_layer, inputs, gy, **kwargs)
    out[f"{name}: output"] = (y, y_ref)
    for i, (gx, gx_ref) in enumerate(zip(gxs, gxs_ref)):
        out[f"{name}: grad of input {i}"] = (gx, gx_ref)
    split = full_grads(split_layer)
    whole = grads_of(whole_layer)
    out[f"{name}: parameter names"] = (np.array(sorted(split)), np.array(sorted(whole)))
    for pname, g in whole.items():
        out[f"{name}: grad of {pname}"] = (split[pname], g)
    state = full_state_dict(split_layer)
    for pname, value in whole_layer.state_dict().items():
        out[f"{name}: full state {pname}"] = (state[pname], value)


def exactness(comm, seed=0):
    """Forward outputs and every gradient of the split layers beside the unsplit layers'."""
    rank, size = comm.rank, comm.size
    rng = np.random.default_rng(seed)
    out = {}

    # Column-parallel with gathered output; row-parallel splitting a whole input.
    linear = build(1, lambda: nn.Linear(6, 8))
    x, gy = rng.standard_normal((5, 6)), rng.standard_normal((5, 8))
    compare(out, "column gather", ColumnParallelLinear.from_linear(linear, comm, gather_output=True), linear,
            [x], gy)
    row = build(2, lambda: nn.Linear(8, 3))
    compare(out, "row whole input", RowParallelLinear.from_linear(row, comm, input_is_parallel=False), row,
            [rng.standard_normal((4, 8))], rng.standard_normal((4, 3)))
    out["gather_weight column"] = (ColumnParallelLinear.from_linear(linear, comm).gather_weight(), linear.W.data)
    out["gather_weight row"] = (RowParallelLinear.from_linear(row, comm).gather_weight(), row.W.data)

    # An uneven split (7 columns) and a layer without bias.
    odd = build(3, lambda: nn.Linear(5, 7, bias=False))
    compare(out, "column uneven", ColumnParallelLinear.from_linear(odd, comm, gather_output=True, uneven=True),
            odd, [rng.standard_normal((3, 5))], rng.standard_normal((3, 7)))

    # MLPs: FeedForward (GELU, 3-d input) and a two-layer MlpBlock (ReLU).
    ff = build(4, lambda: FeedForward(8, 16, "gelu"))
    compare(out, "mlp feedforward", TensorParallelMLP.from_block(ff, comm), ff,
            [rng.standard_normal((2, 3, 8))], rng.standard_normal((2, 3, 8)))
    mlp = build(5, lambda: nn.MlpBlock("mlp", 4, "relu", 6, 12, 4))
    compare(out, "mlp block", TensorParallelMLP.from_block(mlp, comm), mlp,
            [rng.standard_normal((7, 6))], rng.standard_normal((7, 4)))

    # Attention: causal self-attention with padding; cross-attention with a per-head mask.
    attn = build(6, lambda: nn.MultiHeadAttention(8, 4))
    tp_attn = TensorParallelAttention.from_block(attn, comm)
    padding = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    compare(out, "attention self", tp_attn, attn, [rng.standard_normal((2, 4, 8))],
            rng.standard_normal((2, 4, 8)), causal=True, padding_mask=padding)
    head_mask = rng.random((2, 4, 3, 5)) > 0.3
    compare(out, "attention cross", tp_attn, attn,
            [rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 5, 8))],
            rng.standard_normal((2, 3, 8)), attn_mask=head_mask)

    # A Transformer encoder layer: heads and FFN split, layer norms replicated.
    enc = build(7, lambda: TransformerEncoderLayer(8, 4, 16, norm_first=True))
    compare(out, "encoder layer", tensor_parallel(enc, comm), enc, [rng.standard_normal((2, 3, 8))],
            rng.standard_normal((2, 3, 8)), causal=True)

    # A full (unsplit) state loads into the shards: the split layer then computes what the state's layer does.
    other = build(8, lambda: FeedForward(8, 16, "gelu"))
    split = TensorParallelMLP.from_block(ff, comm)
    load_full_state_dict(split, other.state_dict())
    x = rng.standard_normal((3, 8))
    out["load full state: output"] = (split(x).data, other(x).data)

    # The operators alone: backward of each with a different random gy on each rank.
    gys = [np.random.default_rng(100 + r).standard_normal((3, 4)) for r in range(size)]
    x = rng.standard_normal((3, 4))
    for name, fn, expected in [
        ("f backward", copy_to_tensor_parallel, sum(gys)),
        ("g backward", reduce_from_tensor_parallel, gys[rank]),
    ]:
        xv = Variable(x.copy())
        fn(xv, comm).backward(Variable(gys[rank].copy()))
        out[f"operator {name}"] = (xv.grad.data, expected)
    start, stop = block_bounds(4, size)[rank]
    xv = Variable(x.copy())
    scatter_to_tensor_parallel(xv, comm).backward(Variable(gys[rank][:, start:stop].copy()))
    out["operator scatter backward"] = (xv.grad.data,
                                        np.concatenate([gys[r][:, a:b] for r, (a, b) in
                                                        enumerate(block_bounds(4, size))], axis=1))
    xv = Variable(x[:, start:stop].copy())
    y = gather_from_tensor_parallel(xv, comm)
    out["operator gather forward"] = (y.data, np.concatenate([x[:, a:b] for a, b in block_bounds(4, size)], axis=1))
    y.backward(Variable(gys[rank].copy()))
    out["operator gather backward"] = (xv.grad.data, gys[rank][:, start:stop])

    # gradcheck across ranks. Every rank perturbs the same replicated input in
    # lockstep, so the finite differences are those of the whole program.
    shard = np.random.default_rng(200 + rank).standard_normal((4, 3))

    def f_then_g(v):  # x -> f -> x W_r -> g: the sum over ranks of x W_r
        return reduce_from_tensor_parallel(F.matmul(copy_to_tensor_parallel(v, comm), shard), comm)

    def scatter_then_gather(v):  # x -> keep block r -> scale by rank-specific numbers -> gather
        local = scatter_to_tensor_parallel(v, comm)
        return gather_from_tensor_parallel(local * (1.0 + rank + local), comm)

    x = rng.standard_normal((3, 4))
    out["gradcheck f, g"] = (np.array(gradcheck(f_then_g, x, seed=7, fast=False)), np.array(True))
    out["gradcheck scatter, gather"] = (np.array(gradcheck(scatter_then_gather, x, seed=8, fast=False)),
                                        np.array(True))
    return out


def train_mlp_and_encoder(comm, steps=3):
    """Train a split MLP (Adam) and a split encoder layer (SGD); return their whole weights and Adam state."""
    mlp, enc, x_mlp, y_mlp, x_enc, y_enc = training_problem()
    results = {}
    split_mlp = TensorParallelMLP.from_block(mlp, comm)
    split_enc = tensor_parallel(enc, comm)
    for name, model, x, y, make in [("mlp", split_mlp, x_mlp, y_mlp, lambda m: optim.Adam(m, lr=0.01)),
                                    ("encoder", split_enc, x_enc, y_enc, lambda m: optim.SGD(m, lr=0.1))]:
        optimizer = make(model)
        for step in range(steps):
            model.clear_grads()
            loss = F.mean_squared_error(model(x), y)
            loss.backward()
            optimizer.update()
        results[name] = full_state_dict(model)
        results[name + " optimizer"] = full_optimizer_state(model, optimizer)
    return results


def training_problem():
    """The unsplit models and data of ``train_mlp_and_encoder`` (the same on every rank and in the test)."""
    mlp = build(11, lambda: FeedForward(6, 8, "tanh"))
    enc = build(12, lambda: TransformerEncoderLayer(8, 4, 16))
    rng = np.random.default_rng(13)
    return (mlp, enc, rng.standard_normal((10, 6)), rng.standard_normal((10, 6)),
            rng.standard_normal((3, 4, 8)), rng.standard_normal((3, 4, 8)))


def train_single(steps=3):
    """``train_mlp_and_encoder`` in one process with the unsplit layers."""
    mlp, enc, x_mlp, y_mlp, x_enc, y_enc = training_problem()
    results = {}
    for name, model, x, y, make in [("mlp", mlp, x_mlp, y_mlp, lambda m: optim.Adam(m, lr=0.01)),
                                    ("encoder", enc, x_enc, y_enc, lambda m: optim.SGD(m, lr=0.1))]:
        optimizer = make(model)
        for step in range(steps):
            model.clear_grads()
            loss = F.mean_squared_error(model(x), y)
            loss.backward()
            optimizer.update()
        results[name] = dict(model.state_dict())
        results[name + " optimizer"] = optimizer.state_dict()
    return results


def tensor_parallel_suite(comm):
    """Everything one launch checks: exactness pairs and the trained weights."""
    return {"exactness": exactness(comm), "training": train_mlp_and_encoder(comm)}


def flatten(suite):
    """The nested results of ``tensor_parallel_suite`` as flat name -> array (an .npz needs no pickles)."""
    flat = {}
    for what, (split, whole) in suite["exactness"].items():
        flat[f"exactness|{what}|split"] = np.asarray(split)
        flat[f"exactness|{what}|whole"] = np.asarray(whole)
    for model, state in suite["training"].items():
        for name, value in state.items():
            flat[f"training|{model}|{name}"] = np.asarray(value)
    return flat


def unflatten(flat):
    """``flatten``'s inverse (numbers come back as 0-d arrays)."""
    suite = {"exactness": {}, "training": {}}
    for key, value in flat.items():
        kind, what, last = key.split("|")
        if kind == "exactness":
            pair = suite["exactness"].setdefault(what, [None, None])
            pair[last == "whole"] = value
        else:
            suite["training"].setdefault(what, {})[last] = value
    return suite


def main(scenario, out):
    """Under mpiexec: run ``scenario`` on the MPI world and save this rank's results to ``out``."""
    from tinyai.parallel import mpi_world

    comm = mpi_world(timeout=120)
    if scenario == "tensor":
        np.savez(f"{out}/rank{comm.rank}.npz", **flatten(tensor_parallel_suite(comm)))
    elif scenario == "hybrid":
        flat = {}
        for kind in ("tensor", "pipeline"):
            result = hybrid_train(comm, kind, out)
            flat.update({f"{kind}|{name}": value for name, value in result["weights"].items()})
            flat[f"{kind}|progress"] = np.array(result["progress"])
        np.savez(f"{out}/hybrid-rank{comm.rank}.npz", **flat)
    else:
        raise ValueError(f"unknown scenario {scenario!r}")



# --- hybrid parallelism: 2 x 2 grids trained by the Trainer ----------------------------------------------


def hybrid_problem(kind):
    """The unsplit model, data set, loss and optimizer maker of the hybrid tests (the same on every rank)."""
    from tinyai.data import ArrayDataset
    from tinyai.losses import MeanSquaredLoss

    sizes = (6, 8, 4) if kind == "tensor" else (6, 8, 8, 4)
    model = build(31, lambda: nn.MlpBlock("mlp", 10, "tanh", *sizes))
    rng = np.random.default_rng(32)
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 4))
    # 30 training examples in batches of 10: shards of 5 per replica, micro-batches of 2, 2 and 1.
    dataset = ArrayDataset(x, y, batch_size=10, split_ratio=0.75)
    return model, dataset, MeanSquaredLoss(), (lambda m: optim.Adam(m, lr=0.02))


def hybrid_train(comm, kind, folder=None):
    """Train the hybrid problem on a 2 x 2 grid; its whole weights, progress text and the last step's events.

    Each rank asks for its checkpoint at ``folder``/<kind>-rank<r>.npz: only rank 0 may write one.
    """
    import io

    from tinyai.parallel import HybridParallel, ProcessGrid
    from tinyai.training import Trainer

    grid = ProcessGrid(comm, data=2, **{kind: 2})
    model, dataset, loss, make_optimizer = hybrid_problem(kind)
    if kind == "tensor":
        model = tensor_parallel(model, grid.tensor)
    strategy = HybridParallel(grid, micro_batches=3)
    stream = io.StringIO()
    trainer = Trainer(2, strategy=strategy, dataset=dataset, model=model, loss=loss,
                      optimizer=make_optimizer(model), stream=stream, progress="line",
                      checkpoint_path=None if folder is None else f"{folder}/{kind}-rank{comm.rank}.npz")
    with using_rng(np.random.default_rng(33)):  # every rank draws the same batch order
        trainer.train()
    weights = full_state_dict(model) if kind == "tensor" else dict(model.state_dict())
    events = trainer._parallel.engine.executor.last_events
    return {"weights": weights, "progress": stream.getvalue(), "events": events,
            "grid": (grid.data_rank, grid.model_rank)}


def hybrid_single(kind):
    """The hybrid problem trained by one process (the reference)."""
    from tinyai.training import Trainer

    model, dataset, loss, make_optimizer = hybrid_problem(kind)
    trainer = Trainer(2, dataset=dataset, model=model, loss=loss, optimizer=make_optimizer(model), progress="off")
    with using_rng(np.random.default_rng(33)):
        trainer.train()
    return dict(model.state_dict())


if __name__ == "__main__":
    import sys

    main(sys.argv[1], sys.argv[2])
