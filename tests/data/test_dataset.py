"""The DataSet contract: batching, shuffling, splitting, dtype policy, Batch."""
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyai
from tinyai.autograd import Variable
from tinyai.backend import default_dtype, using_rng
from tinyai.data import ArrayDataset, Batch, DataSet


def numbered(n, batch_size=4, **kwargs):
    """x row i is (i, -i) and y[i] = 2 i, so any sample can be identified and pairs checked."""
    x = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float64)
    y = 2 * np.arange(n)
    return ArrayDataset(x, y, batch_size, **kwargs)


def sample_ids(batches):
    ids = np.concatenate([b.x[:, 0] for b in batches]).astype(np.int64)
    labels = np.concatenate([b.y for b in batches])
    np.testing.assert_array_equal(labels, 2 * ids)  # x and y stayed paired
    return ids


@pytest.mark.parametrize("n, batch_size, drop_last, sizes", [
    (10, 4, False, [4, 4, 2]),
    (10, 4, True, [4, 4]),
    (8, 4, False, [4, 4]),
    (8, 4, True, [4, 4]),
    (3, 4, False, [3]),
    (3, 4, True, []),
    (1, 1, False, [1]),
])
def test_batch_counts_and_sizes(n, batch_size, drop_last, sizes):
    data = numbered(n, batch_size, drop_last=drop_last)
    assert len(data) == len(sizes)
    batches = data.get_batches()
    assert [b.size for b in batches] == sizes
    assert all(isinstance(b, Batch) for b in batches)
    # Unshuffled, the batches are the samples in order.
    np.testing.assert_array_equal(sample_ids(batches) if sizes else [], np.arange(sum(sizes)))


@given(n=st.integers(1, 60), batch_size=st.integers(1, 20), drop_last=st.booleans())
def test_batch_count_formula(n, batch_size, drop_last):
    data = numbered(n, batch_size, drop_last=drop_last)
    expected = n // batch_size if drop_last else -(-n // batch_size)
    assert len(data) == expected == len(list(data))
    assert sum(b.size for b in data) == (expected * batch_size if drop_last else n)


def test_shuffle_is_a_reproducible_permutation():
    a = numbered(23, 5).shuffle(seed=7)
    b = numbered(23, 5).shuffle(seed=7)
    ids_a, ids_b = sample_ids(a), sample_ids(b)
    np.testing.assert_array_equal(ids_a, ids_b)
    np.testing.assert_array_equal(np.sort(ids_a), np.arange(23))  # every sample exactly once
    assert not np.array_equal(ids_a, np.arange(23))
    np.testing.assert_array_equal(a.order, ids_a)
    ids_c = sample_ids(numbered(23, 5).shuffle(seed=8))
    assert not np.array_equal(ids_a, ids_c)


def test_shuffle_draws_from_tinyai_rng():
    tinyai.seed(11)
    first = sample_ids(numbered(30, 7).shuffle())
    tinyai.seed(11)
    second = sample_ids(numbered(30, 7).shuffle())
    np.testing.assert_array_equal(first, second)
    with using_rng(np.random.default_rng(5)):
        from_context = sample_ids(numbered(30, 7).shuffle())
    from_rng = sample_ids(numbered(30, 7).shuffle(rng=np.random.default_rng(5)))
    np.testing.assert_array_equal(from_context, from_rng)


def test_shuffle_does_not_move_the_data_and_reset_restores_order():
    data = numbered(12, 5)
    x_before = data.x.copy()
    data.shuffle(seed=1)
    np.testing.assert_array_equal(data.x, x_before)
    data.reset_order()
    np.testing.assert_array_equal(sample_ids(data), np.arange(12))


def test_shuffle_rejects_seed_and_rng_together():
    with pytest.raises(ValueError, match="ArrayDataset.shuffle: pass seed or rng"):
        numbered(5).shuffle(seed=1, rng=np.random.default_rng(1))


def test_split_sizes_disjoint_and_seeded():
    data = numbered(50, 8)
    train, test = data.split(0.8, seed=3)
    train_ids, test_ids = sample_ids(train), sample_ids(test)
    assert (len(train_ids), len(test_ids)) == (40, 10)
    assert not set(train_ids) & set(test_ids)
    np.testing.assert_array_equal(np.sort(np.concatenate([train_ids, test_ids])), np.arange(50))
    # Each part keeps the loaded order; the same seed gives the same split.
    assert np.all(np.diff(train_ids) > 0) and np.all(np.diff(test_ids) > 0)
    np.testing.assert_array_equal(sample_ids(data.split(0.8, seed=3)[1]), test_ids)
    assert not np.array_equal(sample_ids(data.split(0.8, seed=4)[1]), test_ids)
    assert (train.batch_size, test.batch_size) == (8, 8)


def test_default_split_is_80_20_fixed_and_ignores_shuffle():
    data = numbered(25, 4)
    expected_test = sample_ids(numbered(25, 4).get_test_dataset())
    data.shuffle(seed=2)
    train, test = data.get_train_dataset(), data.get_test_dataset()
    assert (train.num_samples, test.num_samples) == (20, 5)
    np.testing.assert_array_equal(sample_ids(test), expected_test)
    assert not set(sample_ids(train)) & set(sample_ids(test))
    assert data.get_train_dataset() is train  # made once, so both sides always match


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.5, 1.5, "0.8", True])
def test_split_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError, match="split ratio must be a number strictly between 0 and 1"):
        numbered(10).split(ratio)


def test_split_refuses_an_empty_part():
    with pytest.raises(ValueError, match="ratio 0.1 of 3 samples leaves an empty training set"):
        numbered(3).split(0.1)
    with pytest.raises(ValueError, match="leaves an empty test set"):
        numbered(3).split(0.9)


def test_batch_to_variable():
    batch = next(iter(numbered(6, 4)))
    vx, vy = batch.to_variable_x(), batch.to_variable_y()
    assert isinstance(vx, Variable) and isinstance(vy, Variable)
    assert vx.requires_grad is False and vy.requires_grad is False
    np.testing.assert_array_equal(vx.data, [[0, 0], [1, -1], [2, -2], [3, -3]])
    np.testing.assert_array_equal(vy.data, [0, 2, 4, 6])
    assert batch.size == 4


def test_batch_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="Batch: x holds 3 samples but y holds 2"):
        Batch(np.zeros((3, 1)), np.zeros(2))


def test_dtype_policy():
    data = ArrayDataset(np.ones((4, 2), np.float64), np.arange(4, dtype=np.int32), 2)
    assert data.x.dtype == np.float32 and data.y.dtype == np.int64
    regression = ArrayDataset(np.arange(4, dtype=np.int16)[:, None], np.ones((4, 1)), 2)
    assert regression.x.dtype == np.int64 and regression.y.dtype == np.float32  # token ids stay ints
    with default_dtype(np.float64):
        assert ArrayDataset(np.ones((4, 2), np.float32), np.arange(4), 2).x.dtype == np.float64
    assert ArrayDataset([[1.0], [2.0]], [0, 1], 1).x.dtype == np.float32  # lists accepted


def test_bad_arrays_are_rejected_with_names():
    with pytest.raises(ValueError, match="ArrayDataset: x holds 10 samples but y holds 9"):
        ArrayDataset(np.zeros((10, 2)), np.zeros(9), 4)
    with pytest.raises(ValueError, match="ArrayDataset: batch_size must be a positive integer, got 0"):
        ArrayDataset(np.zeros((10, 2)), np.zeros(10), 0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 2.5"):
        ArrayDataset(np.zeros((10, 2)), np.zeros(10), 2.5)
    with pytest.raises(TypeError, match="ArrayDataset: x must hold numbers, got dtype <U1"):
        ArrayDataset(np.array(["a", "b"]), np.zeros(2), 1)
    with pytest.raises(ValueError, match="ArrayDataset: x must have a sample axis"):
        ArrayDataset(np.float64(1.0), np.zeros(1), 1)
    with pytest.raises(ValueError, match="ArrayDataset: the data set holds no samples"):
        ArrayDataset(np.zeros((0, 3)), np.zeros(0), 1)


def test_subclass_loads_lazily_once():
    class Counting(DataSet):
        calls = 0

        def _load(self):
            Counting.calls += 1
            return np.arange(6.0)[:, None], np.arange(6)

    data = Counting(batch_size=4)
    assert Counting.calls == 0
    assert len(data) == 2 and data.num_samples == 6
    data.prepare()
    list(data)
    assert Counting.calls == 1


def test_pickle_round_trip_keeps_data_and_order():
    data = numbered(9, 4).shuffle(seed=3)
    copy = pickle.loads(pickle.dumps(data))
    np.testing.assert_array_equal(sample_ids(copy), sample_ids(data))


# -- NaN and infinity are refused when the data set is built ---------------------------------------
def test_a_nan_input_is_refused_with_its_count_and_first_sample():
    x = np.ones((6, 4))
    x[3, 1] = np.nan
    x[5, 0] = np.nan
    x[4, 2] = -np.inf
    with pytest.raises(ValueError) as caught:
        ArrayDataset(x, np.arange(6), 2)
    message = str(caught.value)
    assert message.startswith("ArrayDataset: x holds 2 NaN, 1 inf of 24 values (first at index (3, 1), sample 3)")
    assert "allow_non_finite=True" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_regression_target_is_refused(bad):
    y = np.zeros((5, 2), np.float32)
    y[2, 1] = bad
    with pytest.raises(ValueError, match=r"^ArrayDataset: y holds 1 (NaN|inf) of 10 values \(first at index \(2, 1\), sample 2\)"):
        ArrayDataset(np.ones((5, 3)), y, 2)


def test_finite_values_whose_sum_overflows_are_accepted():
    # The check adds the values up first; a float32 total that overflows is rechecked element by element.
    x = np.full((4, 2), 3e38, np.float32)
    assert ArrayDataset(x, np.arange(4), 2).num_samples == 4


def test_allow_non_finite_keeps_non_finite_values_in_the_splits_too():
    x = np.ones((10, 2))
    x[:, 1] = np.nan
    data = ArrayDataset(x, np.arange(10), 2, allow_non_finite=True)
    assert np.isnan(data.x[:, 1]).all()
    assert np.isnan(data.get_train_dataset().x[:, 1]).all() and np.isnan(data.get_test_dataset().x[:, 1]).all()


@pytest.mark.parametrize("flag", ["drop_last", "allow_non_finite"])
@pytest.mark.parametrize("value", ["no", 1, None])
def test_flags_must_be_bools(flag, value):
    # "no" is truthy: drop_last="no" used to drop the last batch.
    with pytest.raises(TypeError, match=rf"^ArrayDataset: {flag} must be True or False, got "):
        ArrayDataset(np.ones((3, 2)), np.arange(3), 2, **{flag: value})
