"""Gradient compressors: round-trip bounds, what top-k keeps, unbiasedness, error feedback, wire sizes."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyai.parallel.compression import (
    FP16, Compressor, ErrorFeedback, Int8, Payload, RandomK, SignSGD, TopK, get_compressor,
)

FLOAT_DTYPES = [np.float16, np.float32, np.float64]


def arrays(dtype=np.float64, max_side=12, max_dims=3, magnitude=1e3, min_side=1):
    """Finite arrays of 0-3 dimensions with entries in [-magnitude, magnitude]."""
    shape = hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=min_side, max_side=max_side)
    elements = st.floats(-magnitude, magnitude, allow_nan=False, allow_infinity=False, width=64)
    return hnp.arrays(dtype, shape, elements=elements)


COMPRESSOR_FACTORIES = {  # fresh instances per test: ErrorFeedback keeps state
    "fp16": FP16, "int8": Int8, "int8-stochastic": lambda: Int8(stochastic=True, seed=3),
    "topk": lambda: TopK(0.3), "randomk": lambda: RandomK(0.5, seed=4), "signsgd": SignSGD,
    "topk+ef": lambda: ErrorFeedback(TopK(0.1)),
}


def to_host(array):
    return array.get() if hasattr(array, "get") else array


# -- shape, dtype, wire size, byte transport -------------------------------------------------
@pytest.mark.parametrize("name", COMPRESSOR_FACTORIES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_round_trip_keeps_shape_dtype_and_device(name, dtype, xp, to_xp, rng):
    compressor = COMPRESSOR_FACTORIES[name]()
    x = to_xp(rng.standard_normal((3, 5, 2)).astype(dtype))
    payload = compressor.compress(x, key="w")
    y = compressor.decompress(payload)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert type(y) is type(x)  # stays on the input's device
    # The wire size is predicted before compressing, and the bytes round-trip.
    assert payload.nbytes == compressor.payload_nbytes(x.shape, x.dtype)
    wire = payload.to_bytes()
    assert wire.dtype == np.uint8 and wire.size == payload.nbytes
    again = compressor.decompress(compressor.from_bytes(wire, x.shape, x.dtype))
    np.testing.assert_array_equal(to_host(again), to_host(y))


@pytest.mark.parametrize("compressor, expected", [
    (FP16(), 2 * 1000),
    (Int8(), 1000 + 4),
    (TopK(0.01), 10 * (4 + 4)),
    (RandomK(0.05), 50 * (4 + 4)),
    (SignSGD(), 125 + 4),
], ids=repr)
def test_wire_sizes_on_float32(compressor, expected):
    # Independent arithmetic: 1000 float32 entries are 4000 bytes dense.
    payload = compressor.compress(np.linspace(-1, 1, 1000, dtype=np.float32))
    assert payload.nbytes == expected
    assert sum(part.nbytes for part in payload.parts.values()) == expected


def test_topk_count_is_floor_of_ratio_times_size_but_at_least_one():
    assert TopK(0.29).compress(np.ones(100)).parts["values"].size == 29  # 0.29*100 = 28.999... in binary
    assert TopK(0.01).compress(np.ones(64)).parts["values"].size == 1
    assert TopK(1.0).compress(np.ones(7)).parts["values"].size == 7
    assert TopK(0.5).compress(np.ones(0)).nbytes == 0


def test_add_decompressed_accumulates_payloads(rng, xp, to_xp):
    compressor = TopK(0.25)
    xs = [to_xp(rng.standard_normal((4, 6))) for _ in range(3)]
    out = to_xp(np.zeros((4, 6)))
    for x in xs:
        compressor.add_decompressed(out, compressor.compress(x))
    expected = sum(to_host(compressor.decompress(compressor.compress(x))) for x in xs)
    np.testing.assert_allclose(to_host(out), expected, rtol=1e-15)
    transposed = to_xp(np.zeros((6, 4))).T  # not contiguous: still correct
    compressor.add_decompressed(transposed, compressor.compress(xs[0]))
    np.testing.assert_array_equal(to_host(transposed), to_host(compressor.decompress(compressor.compress(xs[0]))))


# -- clear errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, float("nan")])
@pytest.mark.parametrize("cls", [TopK, RandomK])
def test_ratio_outside_unit_interval_is_refused(cls, ratio):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: ratio must be in \(0, 1\]"):
        cls(ratio)


def test_bad_inputs_name_the_operation():
    with pytest.raises(TypeError, match=r"Int8.compress: expected a floating-point array, got dtype int64"):
        Int8().compress(np.arange(4))
    with pytest.raises(TypeError, match="TopK: ratio must be a number"):
        TopK("half")
    with pytest.raises(ValueError, match=r"from_bytes: expected 8 uint8 bytes"):
        FP16().from_bytes(np.zeros(7, dtype=np.uint8), (4,), np.float32)
    ef = ErrorFeedback(TopK(0.5))
    ef.compress(np.ones(4), key="w")
    with pytest.raises(ValueError, match=r"key 'w' holds a residual of shape \(4,\)"):
        ef.compress(np.ones(5), key="w")
    with pytest.raises(TypeError, match="already wrapped"):
        ErrorFeedback(ef)
    with pytest.raises(ValueError, match=r"compression: unknown setting 'zip'"):
        get_compressor("zip")


def test_named_settings():
    assert isinstance(get_compressor("fp16"), FP16)
    assert isinstance(get_compressor("int8"), Int8)
    topk = get_compressor("topk")
    assert isinstance(topk, ErrorFeedback) and isinstance(topk.inner, TopK) and topk.inner.ratio == 0.01
    assert get_compressor(None) is None
    custom = RandomK(0.2)
    assert get_compressor(custom) is custom


# -- FP16 and Int8 round-trip error bounds ---------------------------------------------------
@given(arrays(magnitude=6e4))
def test_fp16_round_trip_error_bound(x):
    y = FP16().decompress(FP16().compress(x))
    # float16 keeps 11 significant bits: relative error <= 2**-11 in the normal
    # range, absolute error <= 2**-25 (half the subnormal spacing) below it.
    bound = np.maximum(np.abs(x) * 2.0 ** -11, 2.0 ** -25)
    assert np.all(np.abs(y - x) <= bound)


@given(arrays())
def test_int8_round_trip_error_bound(x):
    payload = Int8().compress(x)
    y = Int8().decompress(payload)
    amax = float(np.abs(x).max()) if x.size else 0.0
    q = payload.parts["values"]
    assert q.dtype == np.int8 and np.all(np.abs(q.astype(int)) <= 127)
    # Half a quantisation step, plus float64 rounding of the divide and multiply.
    assert np.all(np.abs(y - x) <= amax / 127 / 2 + 1e-12 * amax)


def test_int8_all_zero_tensor():
    y = Int8().decompress(Int8().compress(np.zeros((2, 3), dtype=np.float32)))
    assert np.all(y == 0) and y.dtype == np.float32


# -- what TopK keeps ---------------------------------------------------------------------------
@given(arrays(max_side=10), st.floats(0.01, 1.0))
def test_topk_keeps_exactly_the_k_largest(x, ratio):
    payload = TopK(ratio).compress(x)
    flat = x.reshape(-1)
    k = max(1, math.floor(ratio * flat.size + 1e-9))
    kept = payload.parts["indices"]
    assert kept.dtype == np.int32 and kept.size == k == len(set(kept.tolist()))
    dropped = np.setdiff1d(np.arange(flat.size), kept)
    if dropped.size:  # every kept magnitude >= every dropped magnitude
        assert np.abs(flat[kept]).min() >= np.abs(flat[dropped]).max()
    y = TopK(ratio).decompress(payload).reshape(-1)
    np.testing.assert_array_equal(y[kept], flat[kept])
    assert np.all(y[dropped] == 0)


# -- unbiased compressors: the mean over many draws is the input --------------------------------
DRAWS = 2000
SIGMAS = 6.0  # a 6-sigma band: ~2e-9 per entry of falsely failing under the normal approximation


@settings(max_examples=8)
@given(arrays(max_side=6, max_dims=2, magnitude=10.0), st.sampled_from([0.25, 0.5, 0.75]))
def test_randomk_is_unbiased(x, ratio):
    compressor = RandomK(ratio, seed=11)
    n = x.size
    k = max(1, math.floor(ratio * n + 1e-9))
    mean = sum(compressor.decompress(compressor.compress(x)) for _ in range(DRAWS)) / DRAWS
    # Each entry is x * n/k with probability k/n, else 0: variance x**2 (n/k - 1).
    sigma = np.abs(x) * math.sqrt((n / k - 1) / DRAWS)
    assert np.all(np.abs(mean - x) <= SIGMAS * sigma + 1e-12 * np.abs(x))


def _int8_mean(compressor, x):
    return sum(compressor.decompress(compressor.compress(x)) for _ in range(DRAWS)) / DRAWS


@settings(max_examples=8)
@given(arrays(max_side=6, max_dims=2, magnitude=10.0))
def test_stochastic_int8_is_unbiased(x):
    step = float(np.abs(x).max()) / 127 if x.size else 0.0
    mean = _int8_mean(Int8(stochastic=True, seed=5), x)
    # scale * q is x rounded down or up to the step grid: a two-point
    # distribution of width `step`, so its standard deviation is <= step / 2.
    assert np.all(np.abs(mean - x) <= SIGMAS * step / 2 / math.sqrt(DRAWS) + 1e-12 * step * 127)


def test_the_unbiasedness_check_can_fail():
    # Entries 0.3 steps above the grid: nearest rounding is off by 0.3 steps
    # every time; stochastic rounding is right on average.
    x = np.array([127.0, 0.3, 5.3, -2.7])
    band = SIGMAS * 0.5 / math.sqrt(DRAWS)
    assert np.abs(_int8_mean(Int8(), x) - x).max() > 4 * band
    assert np.abs(_int8_mean(Int8(stochastic=True), x) - x).max() <= band


def test_workers_get_independent_streams():
    base = RandomK(0.5, seed=1)
    x = np.arange(1.0, 41.0)
    a, b = base.for_worker(0).compress(x), base.for_worker(1).compress(x)
    assert not np.array_equal(a.parts["indices"], b.parts["indices"])
    again = RandomK(0.5, seed=1).for_worker(0).compress(x)
    np.testing.assert_array_equal(a.parts["indices"], again.parts["indices"])


# -- error feedback --------------------------------------------------------------------------
def grid_sequences(steps=st.integers(1, 12), size=st.integers(1, 16)):
    """T arrays of float64 multiples of 2**-24 with |entry| <= 64 (integers up to 2**30, scaled)."""
    return st.tuples(steps, size).flatmap(lambda ts: hnp.arrays(
        np.int64, (ts[0], ts[1]), elements=st.integers(-2 ** 30, 2 ** 30)).map(lambda a: a * 2.0 ** -24))


@given(grid_sequences(), st.sampled_from([TopK(0.25), TopK(0.5), FP16()]))
def test_error_feedback_loses_nothing_exactly(gradients, inner):
    """sum_t decompress(payload_t) == sum_t g_t - residual_T, bit for bit.

    Why this is exact and not merely close: every input is a multiple of
    2**-24 below 64 in magnitude. TopK's decoded entries are copies of the
    corrected entries or 0, and FP16's are float16 numbers, which are all
    multiples of 2**-24 (its subnormal spacing). So every corrected input,
    decoded payload, residual and running sum here is a multiple of 2**-24
    below 2**10 (12 steps of at most 64), i.e. an integer below 2**34 times a
    power of two: float64 holds it exactly, and each + and - of the
    implementation and of this test is exact. Telescoping
    residual_t = (g_t + residual_{t-1}) - decoded_t then gives equality.
    """
    ef = ErrorFeedback(inner)
    sent = np.zeros(gradients.shape[1])
    for g in gradients:
        sent = sent + ef.decompress(ef.compress(g, key="w"))
    total = np.zeros(gradients.shape[1])
    for g in gradients:
        total = total + g
    np.testing.assert_array_equal(sent, total - ef.residual("w"))


def _exact(array):
    return [Fraction(float(v)) for v in np.asarray(array, dtype=np.float64).reshape(-1)]


def _half_ulp(array):
    return [Fraction(float(u)) / 2 for u in np.spacing(np.abs(np.asarray(array, dtype=np.float64))).reshape(-1)]


@settings(max_examples=10)
@given(st.lists(arrays(max_side=8, max_dims=1, magnitude=100.0, min_side=8).filter(lambda a: a.shape == (8,)),
                min_size=1, max_size=8),
       st.sampled_from([Int8(), Int8(stochastic=True), RandomK(0.5), SignSGD(), TopK(0.25), FP16()]))
def test_error_feedback_any_compressor_loses_only_rounding(gradients, inner):
    """For every compressor, sum(decoded) + residual_T - sum(g) is at most the rounding of the two
    float operations per step (half an ulp of each result), measured in exact rational arithmetic."""
    ef = ErrorFeedback(inner)
    sent = [Fraction(0)] * 8
    bound = [Fraction(0)] * 8
    previous = np.zeros(8)
    for g in gradients:
        decoded = ef.decompress(ef.compress(g, key="w"))
        corrected = g + previous
        previous = ef.residual("w")
        sent = [s + d for s, d in zip(sent, _exact(decoded))]
        bound = [b + u + v for b, u, v in zip(bound, _half_ulp(corrected), _half_ulp(previous))]
    inputs = [sum(column, Fraction(0)) for column in zip(*(_exact(g) for g in gradients))]
    for s, r, i, b in zip(sent, _exact(ef.residual("w")), inputs, bound):
        assert abs(s + r - i) <= b


def test_error_feedback_keeps_one_residual_per_key_and_sends_small_entries_eventually():
    ef = ErrorFeedback(TopK(0.25))  # 1 of 4 entries per step
    g = np.array([1.0, 0.4, 0.3, 0.2])
    sent = np.zeros(4)
    for _ in range(20):
        sent += ef.decompress(ef.compress(g, key="a"))
        ef.compress(-g, key="b")
    assert np.all(sent > 0)  # every entry got through, though only the largest could at first
    np.testing.assert_allclose(ef.residual("a") + sent, 20 * g)
    # Key "b" saw the negated gradients: its own residual, the mirror image of "a"'s.
    np.testing.assert_array_equal(ef.residual("b"), -ef.residual("a"))
    worker = ef.for_worker(1)
    assert worker.residual("a") is None  # a fresh worker has its own, empty, residuals


def test_payload_nbytes_counts_its_parts():
    payload = Payload((3,), np.dtype(np.float32), {"values": np.zeros(3, np.float16), "scale": np.zeros(1)})
    assert payload.nbytes == 6 + 8


def test_compressor_interface_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        Compressor()

    class Halves(Compressor):  # a user's compressor needs only the three methods
        def compress(self, array, key=None):
            return Payload(array.shape, array.dtype, {"values": array.reshape(-1) / 2})

        def decompress(self, payload):
            return (payload.parts["values"] * 2).reshape(payload.shape)

        def layout(self, shape, dtype):
            return [("values", np.dtype(dtype), math.prod(shape))]

    x = np.arange(6.0).reshape(2, 3)
    halves = ErrorFeedback(Halves())
    np.testing.assert_array_equal(halves.decompress(halves.compress(x)), x)
    assert halves.payload_nbytes((2, 3), np.float64) == 48


def test_encode_and_decode_a_whole_model(rng, xp, to_xp):
    from tinyai.parallel.compression import decode_arrays, encode_arrays

    like = {"b": to_xp(np.zeros(5)), "W": to_xp(np.zeros((4, 5)))}
    workers = [{"W": to_xp(rng.standard_normal((4, 5))), "b": to_xp(rng.standard_normal(5))} for _ in range(2)]
    compressor = Int8()
    wires = [encode_arrays(compressor, grads) for grads in workers]
    assert wires[0].dtype == np.uint8 and wires[0].size == (20 + 8) + (5 + 8)  # int8 entries + a float64 scale each
    total = None
    for wire in wires:
        total = decode_arrays(compressor, wire, like, out=total)
    for name in like:
        want = sum(to_host(compressor.decompress(compressor.compress(g[name]))) for g in workers)
        np.testing.assert_allclose(to_host(total[name]), want, rtol=1e-15)
    with pytest.raises(ValueError, match="decode_arrays: 40 bytes do not match the 41"):
        decode_arrays(compressor, wires[0][:40], like)
