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
from tinyai.backend.device import (
    Device,
    DeviceMismatchError,
    as_device,
    check_same_device,
    device_of,
    gpu_module,
    using_device,
)
from tinyai.backend.collective import Communicator, get_communicator, using_communicator
from tinyai.backend.dtypes import default_dtype, get_default_dtype, narrow_like, set_default_dtype, widen
from tinyai.backend.random import get_rng, get_state, seed, set_state, uniform_like, using_rng
from tinyai.backend.memory import keep_freed_memory

keep_freed_memory()  # see tinyai.backend.memory: fresh pages for every array cost more than the arithmetic

__all__ = [
    "get_array_module", "is_array", "scatter_add", "is_gpu_available", "gpu_unavailable_reason", "register_array_module",
    "to_cpu", "to_gpu", "get_default_dtype", "set_default_dtype", "default_dtype", "widen", "narrow_like",
    "Communicator", "get_communicator", "using_communicator",
    "get_rng", "seed", "get_state", "set_state", "using_rng", "uniform_like",
    "Device", "DeviceMismatchError", "as_device", "check_same_device", "device_of", "gpu_module", "using_device",
]
