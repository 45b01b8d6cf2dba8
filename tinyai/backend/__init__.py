"""Layer 0: the NdArray concept — array modules, devices, dtypes, randomness."""
from tinyai.backend.array_module import (
    get_array_module,
    is_array,
    scatter_add,
    gpu_unavailable_reason,
    is_gpu_available,
    register_array_module,
    to_cpu,
    to_gpu,
)
from tinyai.backend.collective import Communicator, get_communicator, using_communicator
from tinyai.backend.dtypes import default_dtype, get_default_dtype, set_default_dtype
from tinyai.backend.random import get_rng, get_state, seed, set_state, using_rng

__all__ = [
    "get_array_module", "is_array", "scatter_add", "is_gpu_available", "gpu_unavailable_reason", "register_array_module",
    "to_cpu", "to_gpu", "get_default_dtype", "set_default_dtype", "default_dtype",
    "Communicator", "get_communicator", "using_communicator",
    "get_rng", "seed", "get_state", "set_state", "using_rng",
]
