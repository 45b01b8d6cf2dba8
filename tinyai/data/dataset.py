"""Data sets, mini-batches, shuffling and train/test splits (TinyAI's ml.dataset).

A ``DataSet`` holds every sample of one data set as two host arrays: inputs
``x`` of shape (N, ...) and targets ``y`` of shape (N, ...). Iterating it
yields ``Batch`` objects of ``batch_size`` consecutive samples in its current
order; ``len(dataset)`` is the number of batches, not of samples.

    data = ArrayDataset(x, y, batch_size=32)
    data.shuffle()                      # new order, drawn from tinyai's rng
    for batch in data:                  # Batch(x=(32, ...), y=(32, ...))
        loss = criterion(model(batch.to_variable_x()), batch.to_variable_y())

Conversions (made once, when the data are prepared): floating inputs and
targets become the default float dtype (``tinyai.backend.get_default_dtype()``,
float32 unless changed); integer inputs (token ids) and integer targets (class
labels) become int64. Data live in host memory; a trainer moves each batch to
the device it computes on.

Shuffling never copies the data: it draws a new order (a permutation of
0..N-1) and batches gather their samples through it. Splits are fixed by a
seed, so ``get_train_dataset()`` and ``get_test_dataset()`` are disjoint and
the same on every run.
"""
from __future__ import annotations

import abc
import math
from typing import Any, Iterator

import numpy as np

from tinyai.autograd import Variable
from tinyai.backend import get_default_dtype, get_rng, to_cpu
from tinyai.backend.finite import count_non_finite, first_non_finite, is_all_finite
from tinyai.backend.settings import bool_setting, int_setting
from tinyai.backend.pytorch_names import attribute_error

__all__ = ["Batch", "DataSet", "ArrayDataset"]

#: Fraction of the samples that ``get_train_dataset()`` keeps by default; the
#: rest form ``get_test_dataset()``.
DEFAULT_SPLIT_RATIO = 0.8
#: Seed of the permutation behind the default split (fixed, so the split is
#: the same on every run and independent of ``tinyai.backend.seed``).
DEFAULT_SPLIT_SEED = 0


class Batch:
    """One mini-batch: inputs ``x`` of shape (B, ...) and targets ``y`` of shape (B, ...).

    ``size`` is B, the number of samples. ``to_variable_x()`` and
    ``to_variable_y()`` wrap the arrays as Variables that need no gradient
    (data are constants of the graph; only parameters are trained).
    """

    __slots__ = ("x", "y")

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) != len(y):
            raise ValueError(f"Batch: x holds {len(x)} samples but y holds {len(y)}")
        self.x = x
        self.y = y

    @property
    def size(self) -> int:
        """The number of samples in this batch."""
        return int(self.x.shape[0])

    def to_variable_x(self) -> Variable:
        """The inputs as a Variable with ``requires_grad=False``."""
        return Variable(self.x, requires_grad=False)

    def to_variable_y(self) -> Variable:
        """The targets as a Variable with ``requires_grad=False``."""
        return Variable(self.y, requires_grad=False)

    def __iter__(self) -> Iterator[np.ndarray]:
        """``x, y = batch``, so ``for x, y in dataset:`` works as with a PyTorch DataLoader."""
        yield self.x
        yield self.y

    def __repr__(self) -> str:
        return f"Batch(x={self.x.shape} {self.x.dtype}, y={self.y.shape} {self.y.dtype})"


def _convert(array: Any, what: str, owner: str) -> np.ndarray:
    """Host array with tinyai's dtype policy: floats -> default dtype, integers -> int64."""
    array = np.asarray(to_cpu(array))
    if array.ndim == 0:
        raise ValueError(f"{owner}: {what} must have a sample axis, got a scalar")
    kind = array.dtype.kind
    if kind == "f":
        return array.astype(get_default_dtype(), copy=False)
    if kind in "iub":
        return array.astype(np.int64, copy=False)
    raise TypeError(f"{owner}: {what} must hold numbers, got dtype {array.dtype}")


def _refuse_non_finite(array: np.ndarray, what: str, owner: str) -> None:
    """A ValueError naming how many values of ``array`` are NaN or infinite and the first sample holding one."""
    if is_all_finite(array):
        return
    first = first_non_finite(array)
    raise ValueError(f"{owner}: {what} holds {count_non_finite(array)} (first at index {first}, "
                     f"sample {first[0]}); fill in or drop those samples, or pass allow_non_finite=True "
                     "to keep them")


def _check_batch_size(batch_size: Any, owner: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{owner}: batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


class DataSet(abc.ABC):
    """Base of every data set: samples, batching, shuffling and a seeded split.

    Subclasses implement ``_load()``, which returns the arrays ``(x, y)``;
    ``prepare()`` calls it once (lazily, on first use) and applies the dtype
    policy of this module.

    Args:
        batch_size: samples per batch (the last batch may be smaller).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        split_ratio: fraction of the samples in ``get_train_dataset()``
            (default 0.8; the remaining 0.2 form ``get_test_dataset()``).
        split_seed: seed of the permutation that picks the training samples
            (default 0; fixed so the split is the same on every run).
        allow_non_finite: keep floating inputs or targets that hold NaN or
            infinity (default False: refused, see ``prepare``; the name of
            the same opt-out in ``Layer.load_state_dict``).
    """

    def __init__(self, batch_size: int = 32, *, drop_last: bool = False,
                 split_ratio: float = DEFAULT_SPLIT_RATIO,
                 split_seed: int | None = DEFAULT_SPLIT_SEED, allow_non_finite: bool = False) -> None:
        owner = type(self).__name__
        self.batch_size = _check_batch_size(batch_size, owner)
        self.drop_last = bool_setting(drop_last, owner, "drop_last")
        self.allow_non_finite = bool_setting(allow_non_finite, owner, "allow_non_finite")
        _check_ratio(split_ratio, owner)
        self.split_ratio = float(split_ratio)
        self.split_seed = int_setting(split_seed, owner, "split_seed", minimum=0, none_ok=True)
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None
        # None means the natural order 0..N-1 (batches are then views, not copies).
        self._order: np.ndarray | None = None
        self._splits: tuple[ArrayDataset, ArrayDataset] | None = None

    # -- loading ---------------------------------------------------------------
    @abc.abstractmethod
    def _load(self) -> tuple[Any, Any]:
        """Produce all samples as ``(x, y)`` with a shared first axis of length N."""

    def prepare(self) -> "DataSet":
        """Load (or generate) the samples once; later calls do nothing. Returns self.

        Floating inputs and targets holding NaN or infinity are refused here
        (ValueError naming how many and the first sample), unless the data
        set was made with ``allow_non_finite=True``. An error, not a warning:
        a NaN in the data is nearly always a missing value nobody filled in,
        and every loss it touches is NaN. Left to training, the Trainer's
        guard (``on_nan``) would find it only at the batch it falls in, an
        epoch in perhaps, and with ``on_nan="skip"`` would quietly drop that
        whole batch's update every epoch. Here it costs one sum per array
        (no copy) and names the sample before any time is spent. Opt out
        when non-finite values are meant: a model that masks missing values
        itself, or a test of the guard.
        """
        if self._x is None:
            owner = type(self).__name__
            x, y = self._load()
            x = _convert(x, "x", owner)
            y = _convert(y, "y", owner)
            if len(x) != len(y):
                raise ValueError(f"{owner}: x holds {len(x)} samples but y holds {len(y)} "
                                 f"(shapes {x.shape} and {y.shape})")
            if len(x) == 0:
                raise ValueError(f"{owner}: the data set holds no samples (x has shape {x.shape})")
            if not self.allow_non_finite:
                _refuse_non_finite(x, "x", owner)
                _refuse_non_finite(y, "y", owner)
            self._x, self._y = x, y
        return self

    @property
    def x(self) -> np.ndarray:
        """All inputs, shape (N, ...), in the order they were loaded (not shuffled)."""
        return self.prepare()._x

    @property
    def y(self) -> np.ndarray:
        """All targets, shape (N, ...), in the order they were loaded (not shuffled)."""
        return self.prepare()._y

    @property
    def num_samples(self) -> int:
        """N, the number of samples."""
        return int(self.x.shape[0])

    # -- order and batches -----------------------------------------------------
    def shuffle(self, seed: int | None = None, rng: np.random.Generator | None = None) -> "DataSet":
        """Draw a new sample order; the next batches follow it. Returns self.

        The order is a permutation of 0..N-1 drawn from ``rng``, else from a
        fresh generator seeded with ``seed``, else from
        ``tinyai.backend.get_rng()`` (so ``tinyai.seed(n)`` makes it
        reproducible). The data arrays themselves are not moved.
        """
        if seed is not None and rng is not None:
            raise ValueError(f"{type(self).__name__}.shuffle: pass seed or rng, not both")
        seed = int_setting(seed, f"{type(self).__name__}.shuffle", "seed", minimum=0, none_ok=True)
        if rng is None:
            rng = np.random.default_rng(seed) if seed is not None else get_rng()
        self._order = rng.permutation(self.num_samples)
        return self

    def reset_order(self) -> "DataSet":
        """Return to the loaded order 0..N-1. Returns self."""
        self._order = None
        return self

    @property
    def order(self) -> np.ndarray:
        """The sample order the batches follow (a permutation of 0..N-1)."""
        if self._order is None:
            return np.arange(self.num_samples)
        return self._order.copy()

    def __len__(self) -> int:
        """The number of batches: ceil(N / batch_size), or floor with ``drop_last``."""
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: says tinyai's name for a PyTorch habit.
        if name.startswith("__") or name.startswith("_"):
            raise AttributeError(name)
        raise attribute_error(self, "DataSet", name)

    def __iter__(self) -> Iterator[Batch]:
        """Yield the batches in the current order (each unpacks as ``x, y``)."""
        x, y = self.x, self.y
        for k in range(len(self)):
            start, stop = k * self.batch_size, min((k + 1) * self.batch_size, len(x))
            if self._order is None:
                yield Batch(x[start:stop], y[start:stop])
            else:
                index = self._order[start:stop]
                yield Batch(x[index], y[index])

    def get_batches(self) -> list[Batch]:
        """All batches of one pass, in the current order."""
        return list(self)

    # -- train / test split ----------------------------------------------------
    def split(self, ratio: float = DEFAULT_SPLIT_RATIO,
              seed: int | None = DEFAULT_SPLIT_SEED) -> tuple["ArrayDataset", "ArrayDataset"]:
        """Split into (train, test) data sets holding round(ratio * N) and the rest.

        The training samples are chosen by a permutation drawn from
        ``numpy.random.default_rng(seed)`` (``seed=None`` draws from
        ``tinyai.backend.get_rng()``); each side keeps the loaded order of its
        samples, so time series stay in time order. Not stratified. Both
        sides inherit ``batch_size`` and ``drop_last``.
        """
        owner = f"{type(self).__name__}.split"
        _check_ratio(ratio, owner)
        seed = int_setting(seed, owner, "seed", minimum=0, none_ok=True)
        n = self.num_samples
        n_train = round(ratio * n)
        if n_train == 0 or n_train == n:
            raise ValueError(f"{owner}: ratio {ratio} of {n} samples leaves an empty "
                             f"{'training' if n_train == 0 else 'test'} set")
        rng = np.random.default_rng(seed) if seed is not None else get_rng()
        permutation = rng.permutation(n)
        train_index = np.sort(permutation[:n_train])
        test_index = np.sort(permutation[n_train:])
        return self._subset(train_index), self._subset(test_index)

    def _subset(self, index: np.ndarray | slice) -> "ArrayDataset":
        return ArrayDataset(self.x[index], self.y[index], self.batch_size, drop_last=self.drop_last,
                            allow_non_finite=self.allow_non_finite)

    def _make_splits(self) -> tuple["ArrayDataset", "ArrayDataset"]:
        """The (train, test) pair behind ``get_train_dataset``; subclasses with a fixed split override it."""
        return self.split(self.split_ratio, self.split_seed)

    def _cached_splits(self) -> tuple["ArrayDataset", "ArrayDataset"]:
        # Made once, so the two sides always come from the same permutation.
        if self._splits is None:
            self._splits = self._make_splits()
        return self._splits

    def get_train_dataset(self) -> "ArrayDataset":
        """The training part of the split (``split_ratio`` of the samples, seeded by ``split_seed``)."""
        return self._cached_splits()[0]

    def get_test_dataset(self) -> "ArrayDataset":
        """The test part: the samples ``get_train_dataset()`` left out."""
        return self._cached_splits()[1]

    def __repr__(self) -> str:
        if self._x is None:
            return f"{type(self).__name__}(batch_size={self.batch_size}, not prepared)"
        return (f"{type(self).__name__}(samples={len(self._x)}, x={self._x.shape[1:]} {self._x.dtype}, "
                f"y={self._y.shape[1:]} {self._y.dtype}, batch_size={self.batch_size}, batches={len(self)})")


def _check_ratio(ratio: Any, owner: str) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating)) or not 0.0 < ratio < 1.0:
        raise ValueError(f"{owner}: split ratio must be a number strictly between 0 and 1, got {ratio!r}")


class ArrayDataset(DataSet):
    """A data set over arrays already in memory.

    Args:
        x: inputs, shape (N, ...); floats become the default float dtype,
            integers int64.
        y: targets, shape (N, ...); class labels become int64, regression
            targets the default float dtype.
        batch_size: samples per batch.
        drop_last: drop a final batch smaller than ``batch_size``.
        split_ratio, split_seed, allow_non_finite: as for ``DataSet`` (NaN or
            infinity in ``x`` or ``y`` is refused unless ``allow_non_finite=True``).

    >>> import numpy as np
    >>> data = ArrayDataset(np.zeros((10, 3)), np.arange(10), batch_size=4)
    >>> len(data), [b.size for b in data]
    (3, [4, 4, 2])
    """

    def __init__(self, x: Any, y: Any, batch_size: int = 32, *, drop_last: bool = False,
                 split_ratio: float = DEFAULT_SPLIT_RATIO,
                 split_seed: int | None = DEFAULT_SPLIT_SEED, allow_non_finite: bool = False) -> None:
        super().__init__(batch_size, drop_last=drop_last, split_ratio=split_ratio, split_seed=split_seed,
                         allow_non_finite=allow_non_finite)
        self._source = (x, y)
        self.prepare()  # convert and check now, so bad arrays fail where they were passed in
        self._source = None

    def _load(self) -> tuple[Any, Any]:
        return self._source
