"""The Model: a named network with saving, loading and a summary (TinyAI's Model and ModelInfo).

A ``Block`` is the network; a ``Model`` is what one trains, saves and ships:
it gives the block a name, writes its weights to an ``.npz`` file and reads
them back, and describes itself as a table. Everything else (forward,
parameters, modes, devices) is the block's, passed through unchanged, so
parameter names are the block's own (``fc1.W``), and an optimizer built on
the model or on the block keys its state the same way.

Files are plain ``.npz`` archives: one array per parameter or buffer under
its dotted name, plus two entries under the reserved ``__tinyai__.`` prefix
(the format version and the model's name). Loading never unpickles, so a
weights file cannot run code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np

from tinyai.autograd import Variable, no_grad, test_mode
from tinyai.backend import get_default_dtype, is_array, to_cpu
from tinyai.backend.pytorch_names import attribute_error
from tinyai.nn import Layer, Linear, Parameter
from tinyai.training.npz_files import read_npz, write_npz_atomic

#: Keys under this prefix in a weights file are metadata, not weights.
META_PREFIX = "__tinyai__."
FORMAT_VERSION = 1


@dataclass
class LayerInfo:
    """One row of a model summary."""

    name: str                        #: dotted name in the model ("encoder.fc1")
    type: str                        #: class name ("Linear")
    params: int                      #: elements of the layer's *own* Parameters (not its children's)
    output_shape: Any = None         #: shape of its output (None in the batch position when inferred); None if unknown


@dataclass
class ModelInfo:
    """What ``Model.info()`` reports: the layers, their output shapes and parameter counts.

    ``str(info)`` is the table that ``Model.summary()`` returns.
    """

    name: str
    layers: list[LayerInfo] = field(default_factory=list)
    total_params: int = 0
    input_shape: Any = None
    #: Why there are no output shapes (they need a sample input), or None.
    shape_note: str | None = None

    def __str__(self) -> str:
        with_shapes = any(row.output_shape is not None for row in self.layers)
        header = ("Layer (type)", "Output shape", "Params") if with_shapes else ("Layer (type)", "Params")
        body = []
        for row in self.layers:
            depth = row.name.count(".")
            label = f"{'  ' * depth}{row.name.rsplit('.', 1)[-1]} ({row.type})"
            shape = (_format_shape(row.output_shape),) if with_shapes else ()
            body.append((label, *shape, f"{row.params:,}"))
        columns = len(header)
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(columns)]
        line = "=" * (sum(widths) + 3 * (columns - 1))

        def fmt(r: tuple[str, ...]) -> str:
            cells = [f"{r[i]:<{widths[i]}}" for i in range(columns - 1)] + [f"{r[-1]:>{widths[-1]}}"]
            return "   ".join(cells)

        out = [f"Model: {self.name}"]
        if self.input_shape is not None:
            out.append(f"Input shape: {_format_shape(self.input_shape)}")
        out += [line, fmt(header), line, *(fmt(r) for r in body), line,
                f"Total params: {self.total_params:,}"]
        if self.shape_note:
            out.append(self.shape_note)
        return "\n".join(out)


def _format_shape(shape: Any) -> str:
    """``(N, 128)``: a batch dimension that was inferred (None) shows as N; unknown as "-"."""
    if shape is None:
        return "-"
    if isinstance(shape, tuple) and all(d is None or isinstance(d, int) for d in shape):
        return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    if isinstance(shape, tuple):
        return "(" + ", ".join(_format_shape(s) for s in shape) + ")"
    return str(shape)


def _shape_of(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return tuple(_shape_of(v) for v in value)
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else None


class Model:
    """A named network: ``Model(name, block)``.

    Args:
        name: the model's name (shown in summaries, stored in saved files).
        block: the network, a ``Layer`` or ``Block``.

    >>> import numpy as np
    >>> from tinyai.nn import Linear
    >>> model = Model("regressor", Linear(3, 1))
    >>> model(np.ones((2, 3), dtype=np.float32)).shape
    (2, 1)
    >>> [name for name, _ in model.named_params()]
    ['W', 'b']
    """

    def __init__(self, name: str, block: Layer) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"Model: name must be a non-empty string, got {name!r}")
        if not isinstance(block, Layer):
            raise TypeError(f"Model {name!r}: block must be a tinyai.nn Layer or Block, got {type(block).__name__}")
        self.name = name
        self.block = block

    # -- the block, passed through ------------------------------------------------------
    def forward(self, *xs: Any) -> Any:
        """Run the network on the inputs (arrays become Variables without gradient)."""
        return self.block(*xs)

    def __call__(self, *xs: Any) -> Any:
        return self.forward(*xs)

    def params(self) -> Iterator[Parameter]:
        return self.block.params()

    def named_params(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) in the block's stable order."""
        return self.block.named_params()

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        return self.block.named_buffers()

    def named_layers(self) -> Iterator[tuple[str, Layer]]:
        return self.block.named_layers()

    def num_params(self) -> int:
        """The number of trainable scalars."""
        return self.block.num_params()

    def clear_grads(self) -> None:
        self.block.clear_grads()

    # PyTorch's names for the same methods (aliases: one implementation).
    parameters = params
    named_parameters = named_params
    zero_grad = clear_grads

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: says tinyai's name for a PyTorch habit.
        if name.startswith("__"):
            raise AttributeError(name)
        raise attribute_error(self, "Model", name)

    def train(self, mode: bool = True) -> "Model":
        self.block.train(mode)
        return self

    def eval(self) -> "Model":
        self.block.eval()
        return self

    @property
    def training(self) -> bool:
        return self.block.training

    def reset_state(self) -> None:
        self.block.reset_state()

    def to_gpu(self, device_id: int | None = None) -> "Model":
        """Move parameters and buffers to GPU ``device_id`` (default 0); returns self."""
        self.block.to_gpu(device_id)
        return self

    def to_cpu(self) -> "Model":
        self.block.to_cpu()
        return self

    def to(self, device: Any) -> "Model":
        """Move parameters and buffers to ``device`` ("cpu", "gpu", "gpu:N"); returns self."""
        self.block.to(device)
        return self

    @property
    def device(self) -> Any:
        """The Device holding the parameters."""
        return self.block.device

    def state_dict(self) -> dict[str, Any]:
        """name -> array for every Parameter and persistent buffer (the block's own arrays)."""
        return self.block.state_dict()

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True, *,
                        allow_non_finite: bool = False) -> None:
        """Load ``state`` into the block, all or nothing (see ``Layer.load_state_dict``)."""
        self.block.load_state_dict(state, strict=strict, allow_non_finite=allow_non_finite)

    def check_state_dict(self, state: Mapping[str, Any], strict: bool = True, *,
                         allow_non_finite: bool = False) -> None:
        """Raise what ``load_state_dict(state)`` would raise, changing nothing."""
        self.block.check_state_dict(state, strict=strict, allow_non_finite=allow_non_finite)

    # -- files ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the weights (and buffers) to ``path`` as an ``.npz`` archive, atomically.

        The archive is written to a temporary file in the same directory and
        then renamed over ``path`` (``os.replace``), so a crash mid-write
        never leaves a half-written file where a good one was; temporary
        files of saves that were killed are removed by the next save (see
        ``tinyai.training.npz_files``). The name is used exactly as given
        (no ``.npz`` is appended).
        """
        arrays: dict[str, Any] = {}
        for key, value in self.state_dict().items():
            if key.startswith(META_PREFIX):
                raise ValueError(f"Model.save: parameter name {key!r} uses the reserved prefix {META_PREFIX!r}")
            arrays[key] = to_cpu(value)
        arrays[META_PREFIX + "format"] = np.asarray(FORMAT_VERSION)
        arrays[META_PREFIX + "name"] = np.asarray(self.name)
        write_npz_atomic(path, arrays, where="Model.save")

    def load_weights(self, path: str | os.PathLike, strict: bool = True, *,
                     allow_non_finite: bool = False) -> None:
        """Read weights saved by ``save`` into this model (TinyAI's ``loadModel`` for weights).

        All or nothing: the whole file is checked against the model (names,
        shapes, dtypes, values; see ``Layer.load_state_dict``) before any
        weight changes, so a file that does not fit leaves the model as it was.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a readable ``.npz`` archive of plain
                arrays, or its contents do not fit this model: names, shapes,
                complex or non-numeric dtypes, values beyond the range of the
                parameter's dtype, NaN or infinity unless ``allow_non_finite``
                (the message names the path and lists every difference).
        """
        arrays = read_weights(path)
        saved_name = arrays.pop(META_PREFIX + "name", None)
        for key in [k for k in arrays if k.startswith(META_PREFIX)]:
            del arrays[key]
        try:
            self.block.load_state_dict(arrays, strict=strict, allow_non_finite=allow_non_finite)
        except ValueError as exc:
            origin = f" (saved from model {str(saved_name)!r})" if saved_name is not None else ""
            detail = str(exc).split(": ", 1)[1] if str(exc).startswith("load_state_dict of") else str(exc)
            raise ValueError(f"Model.load_weights: {os.fspath(path)!r}{origin} does not fit model "
                             f"{self.name!r}: {detail}") from None

    @classmethod
    def load(cls, path: str | os.PathLike, block: Layer, name: str | None = None) -> "Model":
        """A new Model around ``block`` with the weights from ``path``; the name defaults to the saved one."""
        if name is None:
            saved = read_weights(path).get(META_PREFIX + "name")
            name = str(saved) if saved is not None else os.path.splitext(os.path.basename(os.fspath(path)))[0]
        model = cls(name, block)
        model.load_weights(path)
        return model

    # -- description ------------------------------------------------------------------------
    def info(self, sample: Any = None) -> ModelInfo:
        """Layers, parameter counts and output shapes (TinyAI's ModelInfo).

        Args:
            sample: optional input to run once (under ``no_grad`` and test
                mode) to record each layer's output shape: an array, a
                Variable, a tuple of them for several inputs, or a shape tuple
                of ints (filled with zeros of the default float dtype).
                Without it the shapes are still shown when the model fixes
                its input's size (its first layer is a ``Linear`` with known
                input features, or the block has an ``input_shape``, as
                ``SimpleConvNet`` does); the batch dimension shows as ``N``.
                Otherwise ``shape_note`` says which sample to pass.
        """
        layers = [(name, layer) for name, layer in self.named_layers() if name]
        if not layers:
            layers = [("", self.block)]  # a bare layer: one row for itself
        shapes: dict[str, Any] = {}
        input_shape = None
        note = None
        if sample is not None:
            inputs = _sample_inputs(sample)
            input_shape = _shape_of(inputs[0]) if len(inputs) == 1 else _shape_of(inputs)
            shapes = self._record_output_shapes(inputs, layers)
        else:
            shapes, input_shape, note = self._inferred_output_shapes(layers)
        rows = []
        root_own = sum(int(p.size) for pname, p in self.block.named_params() if "." not in pname)
        if layers[0][0] and root_own:
            # Parameters the top block holds itself (not through a child) get a row too.
            rows.append(LayerInfo(type(self.block).__name__, type(self.block).__name__, root_own))
        for name, layer in layers:
            own = sum(int(p.size) for pname, p in layer.named_params() if "." not in pname)
            rows.append(LayerInfo(name or type(layer).__name__, type(layer).__name__, own, shapes.get(name)))
        return ModelInfo(self.name, rows, self.num_params(), input_shape, note)

    def _inferred_output_shapes(self, layers: list[tuple[str, Layer]]) -> tuple[dict[str, Any], Any, str | None]:
        """Output shapes found by running a batch of two zero samples of the size the
        model fixes, with the batch dimension as None; or a note saying a sample is needed."""
        per_sample, first = _fixed_input_shape(self.block)
        if per_sample is None:
            what = f"the first layer ({type(first).__name__}) does not fix" if first is not None else "nothing fixes"
            return {}, None, (f"Output shapes need a sample: {what} the input's size; pass one batch, "
                              "e.g. model.summary(sample=x[:1]), or its shape as a tuple of ints.")
        batch = 2
        try:
            recorded = self._record_output_shapes((np.zeros((batch, *per_sample), dtype=get_default_dtype()),), layers)
        except (ValueError, TypeError, IndexError) as error:
            return {}, None, (f"Output shapes: a batch of shape (N, {', '.join(map(str, per_sample))}) did not "
                              f"run through the model ({type(error).__name__}); pass a sample to see them.")
        finally:
            if hasattr(self.block, "reset_state"):
                self.block.reset_state()

        def symbolic(shape: Any) -> Any:
            if isinstance(shape, tuple) and shape and all(isinstance(d, int) for d in shape):
                return (None, *shape[1:]) if shape[0] == batch else shape
            if isinstance(shape, tuple):
                return tuple(symbolic(s) for s in shape)
            return shape

        return {name: symbolic(shape) for name, shape in recorded.items()}, (None, *per_sample), None

    def summary(self, sample: Any = None) -> str:
        """The ``info()`` table as text: one row per layer, then the total parameter count."""
        return str(self.info(sample))

    def _record_output_shapes(self, inputs: tuple, layers: list[tuple[str, Layer]]) -> dict[str, Any]:
        """Run the model once, noting the shape of what each layer returns."""
        shapes: dict[str, Any] = {}

        def recorder(name: str, forward: Any) -> Any:
            def record(*xs: Any, **kwargs: Any) -> Any:
                out = forward(*xs, **kwargs)
                shapes[name] = _shape_of(out)
                return out
            return record

        wrapped = []
        try:
            for name, layer in layers:
                # An instance attribute shadows the class's forward for this one run.
                object.__setattr__(layer, "forward", recorder(name, layer.forward))
                wrapped.append(layer)
            with no_grad(), test_mode():
                self.forward(*inputs)
        finally:
            for layer in wrapped:
                object.__delattr__(layer, "forward")
        return shapes

    def __repr__(self) -> str:
        return f"Model({self.name!r}, {repr(self.block)})"


def _fixed_input_shape(block: Layer) -> tuple[tuple[int, ...] | None, Layer | None]:
    """The shape of one input sample when the model fixes it, and the first layer with parameters.

    A block may say it (an ``input_shape`` attribute, e.g. ``SimpleConvNet``);
    otherwise a first ``Linear`` with known input features fixes (features,).
    """
    declared = getattr(block, "input_shape", None)
    if isinstance(declared, tuple) and declared and all(isinstance(d, int) for d in declared):
        return declared, None
    # The first layer holding parameters of its own (a container's belong to its children).
    first = next((layer for _, layer in block.named_layers()
                  if any("." not in name for name, _ in layer.named_params())), None)
    if isinstance(first, Linear) and first.in_features is not None:
        return (first.in_features,), first
    return None, first


def _sample_inputs(sample: Any) -> tuple:
    if isinstance(sample, tuple) and sample and all(isinstance(d, (int, np.integer)) for d in sample):
        return (np.zeros(sample, dtype=get_default_dtype()),)
    if isinstance(sample, (Variable,)) or is_array(sample):
        return (sample,)
    if isinstance(sample, (tuple, list)):
        return tuple(sample)
    raise TypeError(f"Model.info: sample must be an array, a Variable, a tuple of them or a shape tuple, "
                    f"got {type(sample).__name__}")


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` weights file, read without unpickling anything.

    Raises FileNotFoundError (or another OSError) naming the path when it
    cannot be opened, and ValueError naming the path when its content is not
    a readable ``.npz`` archive of plain arrays.
    """
    return read_npz(path, "Model.load_weights", "an .npz weights file")
