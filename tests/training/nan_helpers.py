"""Data with one infinite input, for the non-finite-gradient tests (single and data-parallel)."""
import numpy as np

from tinyai.data import ArrayDataset


class Whole:
    """A data set trained on whole (no train/test split), so batch k is rows 5k..5k+4."""

    def __init__(self, x, y, batch_size=5):
        # allow_non_finite=True: the infinity is meant to reach training, where the guard must catch it.
        self.part = ArrayDataset(x, y, batch_size, allow_non_finite=True)

    def get_train_dataset(self):
        return self.part


def poisoned_arrays(bad_row=13):
    """Regression data with one +inf input, in batch 3 (rows 10-14) when not shuffled.

    tanh saturates at the infinite input, so the loss stays finite, but the
    gradient of fc1.W is x^T @ gy with inf * 0 in it: NaN.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    y = rng.standard_normal((20, 3)).astype(np.float32)
    x[bad_row, 2] = np.inf
    return x, y
