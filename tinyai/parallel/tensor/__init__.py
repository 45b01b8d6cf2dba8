"""Tensor parallelism (Megatron-LM): one layer's matrices split over the ranks of a communicator.

* ``operators`` — the conjugate communication operators f and g, and
  all-gather / split along the last axis, as differentiable Functions;
* ``layers`` — ``ColumnParallelLinear`` and ``RowParallelLinear``;
* ``blocks`` — ``TensorParallelMLP``, ``TensorParallelAttention`` and
  ``tensor_parallel(model, comm)``, which splits every such part of a model;
* ``checkpoint`` — whole (unsplit) state to save, cut into shards to load.

Every rank runs the same program (``spmd`` or ``mpiexec``) on the same
input; the split layers talk through the communicator they were built with.
"""
from tinyai.parallel.tensor.blocks import TensorParallelAttention, TensorParallelMLP, tensor_parallel
from tinyai.parallel.tensor.checkpoint import (
    full_grads,
    full_optimizer_state,
    full_state_dict,
    load_full_optimizer_state,
    load_full_state_dict,
)
from tinyai.parallel.tensor.traffic import CountingCommunicator
from tinyai.parallel.tensor.layers import ColumnParallelLinear, RowParallelLinear
from tinyai.parallel.tensor.operators import (
    copy_to_tensor_parallel,
    gather_from_tensor_parallel,
    reduce_from_tensor_parallel,
    scatter_to_tensor_parallel,
)

__all__ = [
    "ColumnParallelLinear", "RowParallelLinear", "TensorParallelMLP", "TensorParallelAttention", "tensor_parallel",
    "copy_to_tensor_parallel", "reduce_from_tensor_parallel", "gather_from_tensor_parallel",
    "scatter_to_tensor_parallel",
    "CountingCommunicator",
    "full_state_dict", "load_full_state_dict", "full_grads", "full_optimizer_state", "load_full_optimizer_state",
]
