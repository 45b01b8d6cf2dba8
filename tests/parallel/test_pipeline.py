"""Pipeline parallelism: exact gradients on the GPipe schedule, one thread per stage, clean failure."""
import threading

import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai import nn
from tinyai.backend import default_dtype
from tinyai.losses import MeanSquaredLoss
from tinyai.parallel import PipelineParallel, PipelineStageError, bubble_fraction, split_into_stages
from tinyai.parallel.pipeline import format_schedule, gpipe_schedule
from tinyai.parallel.utils import deep_copy_model


def _mlp():
    """6 -> 8 -> 8 -> 5 -> 3, tanh between: five layers to cut into 2 or 3 stages."""
    return nn.SequentialBlock(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 5),
                              nn.Tanh(), nn.Linear(5, 3), name="mlp")


def _batches(n_steps, batch, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, 6)), rng.standard_normal((batch, 3))) for _ in range(n_steps)]


def _sgd(params, lr=0.1):
    for p in params:
        p.data -= lr * p.grad.data


def _live_pipeline_threads():
    return [t for t in threading.enumerate() if t.name.startswith("tinyai-pipeline")]


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    yield
    assert _live_pipeline_threads() == []


@pytest.mark.parametrize("n_stages, micro_batches, batch", [
    (2, 4, 12),   # M divides N
    (2, 3, 10),   # it does not: micro-batches of 4, 3, 3
    (3, 4, 10),   # 3 stages, micro-batches of 3, 3, 2, 2
    (3, 5, 3),    # more micro-batches than examples: one example each
    (3, 1, 7),    # no micro-batching at all
])
def test_k_sgd_steps_equal_single_thread_training(n_stages, micro_batches, batch):
    with default_dtype(np.float64):
        ta.seed(11)
        model = _mlp()
    reference = deep_copy_model(model)
    initial = [p.data.copy() for p in model.params()]
    batches = _batches(4, batch, seed=n_stages * 10 + micro_batches)
    loss = MeanSquaredLoss()

    expected_losses = []
    for x, y in batches:
        reference.clear_grads()
        value = loss.loss(ta.Variable(y, requires_grad=False), reference(ta.Variable(x, requires_grad=False)))
        value.backward()
        expected_losses.append(float(value.data))
        _sgd(reference.params())

    stages = split_into_stages(model, n_stages)
    got_losses = []
    with PipelineParallel(stages, micro_batches=micro_batches) as pipe:
        for x, y in batches:
            pipe.clear_grads()
            got_losses.append(pipe.step(x, y, loss))
            _sgd(pipe.params())
    # The stages hold the model's own layers, so the model itself was trained.
    for (name, p), (_, q) in zip(model.named_params(), reference.named_params()):
        assert p.data.dtype == np.float64
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(got_losses, expected_losses, rtol=1e-10)
    assert all(not np.allclose(p.data, p0) for p, p0 in zip(model.params(), initial))  # it really trained


def test_optimizer_built_on_the_pipeline_matches_one_on_the_model():
    with default_dtype(np.float64):
        ta.seed(5)
        model = _mlp()
    reference = deep_copy_model(model)
    x, y = _batches(1, 9, seed=3)[0]
    loss = MeanSquaredLoss()
    reference_opt = ta.optim.Adam(reference, lr=0.01)
    with PipelineParallel(split_into_stages(model, 2), micro_batches=2) as pipe:
        opt = ta.optim.Adam(pipe, lr=0.01)
        for _ in range(3):
            pipe.clear_grads()
            pipe.step(x, y, loss)
            opt.update()
            reference.clear_grads()
            loss(reference(x), y).backward()
            reference_opt.update()
        assert [name for name, _ in pipe.named_params()][:2] == ["stage0.linear0.W", "stage0.linear0.b"]
    for (name, p), (_, q) in zip(model.named_params(), reference.named_params()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-13, err_msg=name)


def test_step_returns_the_mean_loss_and_accepts_a_plain_loss_function():
    with default_dtype(np.float64):
        ta.seed(2)
        layers = [nn.Linear(6, 4), nn.Linear(4, 3)]
    x, y = _batches(1, 7, seed=9)[0]
    # Independent reference in plain NumPy: (x W1 + b1) W2 + b2.
    a, b = layers
    prediction = (x @ a.W.data + a.b.data) @ b.W.data + b.b.data
    with PipelineParallel(layers, micro_batches=3) as pipe:
        value = pipe.step(x, y, F.mean_squared_error)
    # Micro-batches of 3, 2, 2: the weights 3/7, 2/7, 2/7 give back the mean over all 7 examples.
    np.testing.assert_allclose(value, np.mean((prediction - y) ** 2), rtol=1e-12)


def test_each_stage_runs_in_its_own_thread():
    seen = {}

    class Recorder(nn.Layer):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x):
            seen.setdefault(self.k, set()).add(threading.get_ident())
            return x

    with default_dtype(np.float64):
        stages = [nn.SequentialBlock(nn.Linear(6, 5), Recorder(0)), nn.SequentialBlock(nn.Linear(5, 4), Recorder(1)),
                  nn.SequentialBlock(nn.Linear(4, 3), Recorder(2))]
    x, y = _batches(1, 8)[0]
    with PipelineParallel(stages, micro_batches=4) as pipe:
        pipe.step(x, y, MeanSquaredLoss())
        pipe.forward(x)
        ids = pipe.thread_ids
    # One thread per stage, the same for all its micro-batches, and none is the caller's.
    assert [seen[k] for k in range(3)] == [{ids[0]}, {ids[1]}, {ids[2]}]
    assert len(set(ids)) == 3 and threading.get_ident() not in ids


def test_the_stages_follow_the_gpipe_schedule():
    with default_dtype(np.float64):
        ta.seed(1)
        model = _mlp()
    x, y = _batches(1, 8)[0]
    with PipelineParallel(split_into_stages(model, 3), micro_batches=4) as pipe:
        pipe.step(x, y, MeanSquaredLoss())
        events = pipe.last_events
    schedule = gpipe_schedule(3, 4)
    for k in range(3):
        done = [f"{phase}{m}" for stage, phase, m, _, _ in events if stage == k]
        assert done == [cell for cell in schedule[k] if cell != ".."]
        assert done == ["F0", "F1", "F2", "F3", "B3", "B2", "B1", "B0"]
    # Dependencies hold in wall-clock time: stage 1 starts F0 after stage 0 finished it.
    start = {(k, p, m): a for k, p, m, a, _ in events}
    end = {(k, p, m): b for k, p, m, _, b in events}
    for m in range(4):
        assert start[(1, "F", m)] >= end[(0, "F", m)]
        assert start[(0, "B", m)] >= end[(1, "B", m)]


def test_forward_is_inference_in_test_mode_without_a_graph():
    with default_dtype(np.float64):
        ta.seed(4)
        model = nn.SequentialBlock(nn.Linear(6, 16), nn.Dropout(0.5), nn.Linear(16, 3))
    x = np.random.default_rng(0).standard_normal((10, 6))
    with ta.no_grad(), ta.test_mode():
        expected = model(x).data
    with PipelineParallel(split_into_stages(model, 2), micro_batches=3) as pipe:
        out = pipe.forward(x)
    assert not out.requires_grad and out.creator is None
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)  # dropout off, examples in order


def test_a_failing_stage_is_named_and_stops_every_thread():
    class Explodes(nn.Layer):
        def forward(self, x):
            if x.shape[0] == 2:  # the third micro-batch of 3, 3, 2
                raise ValueError("boom on a small micro-batch")
            return x

    stages = [nn.Linear(6, 4), nn.SequentialBlock(nn.Linear(4, 4), Explodes(), name="middle"), nn.Linear(4, 3)]
    x, y = _batches(1, 8)[0]
    pipe = PipelineParallel(stages, micro_batches=3)
    with pytest.raises(PipelineStageError, match=r"stage 1 \(SequentialBlock 'middle'\) failed in the forward "
                                                  r"of micro-batch 2: ValueError: boom") as info:
        pipe.step(x.astype(np.float32), y.astype(np.float32), MeanSquaredLoss())
    assert (info.value.stage, info.value.phase, info.value.micro_batch) == (1, "forward", 2)
    assert isinstance(info.value.__cause__, ValueError)
    assert not pipe.alive and _live_pipeline_threads() == []
    with pytest.raises(RuntimeError, match="shut down"):
        pipe.step(x, y, MeanSquaredLoss())
    pipe.shutdown()  # still harmless


def test_a_failing_backward_and_a_bad_loss_are_reported_by_stage():
    class BadBackward(ta.Function):
        def forward(self, x):
            return x

        def backward(self, gy):
            raise ArithmeticError("backward exploded")

    class Layer0(nn.Layer):
        def forward(self, x):
            return BadBackward()(x)

    x, y = _batches(1, 4)[0]
    stages = [nn.Linear(6, 3), Layer0()]
    with PipelineParallel(stages, micro_batches=2) as pipe:
        with pytest.raises(PipelineStageError, match="stage 1 .* failed in the backward of micro-batch 1"):
            pipe.step(x.astype(np.float32), y.astype(np.float32), MeanSquaredLoss())
    with PipelineParallel([nn.Linear(6, 3)], micro_batches=2) as pipe:
        with pytest.raises(PipelineStageError, match="stage 0 .* in the loss of micro-batch 0: ValueError: "
                                                     r"the loss must return a one-element Variable.*\(2, 3\)"):
            pipe.step(x.astype(np.float32), y.astype(np.float32), lambda p, t: (p - t) ** 2)


def test_shutdown_is_idempotent_and_the_context_manager_stops_threads():
    pipe = PipelineParallel([nn.Linear(6, 3)], micro_batches=2)
    assert pipe.alive and len(_live_pipeline_threads()) == 1
    pipe.shutdown()
    pipe.shutdown()
    assert not pipe.alive and _live_pipeline_threads() == []
    with PipelineParallel([nn.Linear(6, 4), nn.Linear(4, 3)]) as pipe:
        assert len(_live_pipeline_threads()) == 2
    assert _live_pipeline_threads() == []
    with pytest.raises(RuntimeError, match="PipelineParallel.forward: the pipeline has been shut down"):
        pipe.forward(np.ones((2, 6), np.float32))


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="unknown backend 'process'"):
        PipelineParallel([nn.Linear(2, 2)], backend="process")
    with pytest.raises(ValueError, match="micro_batches must be an int >= 1, got 0"):
        PipelineParallel([nn.Linear(2, 2)], micro_batches=0)
    with pytest.raises(TypeError, match="stage 1 is a str, not a Layer"):
        PipelineParallel([nn.Linear(2, 2), "relu"])
    with pytest.raises(TypeError, match="non-empty list of Layers"):
        PipelineParallel(nn.Linear(2, 2))
    shared = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="parameter 'W' of stage 1 is also in stage 0"):
        PipelineParallel([shared, shared])
    with PipelineParallel([nn.Linear(6, 3)]) as pipe:
        with pytest.raises(ValueError, match=r"same number of examples, got shapes \(4, 6\) and \(3, 3\)"):
            pipe.step(np.ones((4, 6), np.float32), np.ones((3, 3), np.float32), MeanSquaredLoss())
        with pytest.raises(ValueError, match="the batch is empty"):
            pipe.step(np.ones((0, 6), np.float32), np.ones((0, 3), np.float32), MeanSquaredLoss())


def test_split_into_stages_balances_parameters_and_keeps_the_layers():
    net = nn.SequentialBlock(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(),
                             nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), name="net")  # 110 params per Linear
    stages = split_into_stages(net, 2)
    assert [len(s) for s in stages] == [4, 3]  # 220 | 220, the activation stays with its layer
    assert [s.num_params() for s in stages] == [220, 220]
    assert [layer for s in stages for layer in s.children()] == list(net.children())  # same objects, same order
    assert [s.name for s in stages] == ["stage0", "stage1"]
    # One big layer: the best cut isolates it (largest stage 120, where 6+120 | 82 | 6 would be 126).
    big = [nn.Linear(2, 2), nn.Linear(2, 40), nn.Linear(40, 2), nn.Linear(2, 2)]  # 6, 120, 82, 6
    assert [s.num_params() for s in split_into_stages(big, 3)] == [6, 120, 88]
    assert [len(s) for s in split_into_stages(big, 4)] == [1, 1, 1, 1]
    assert [len(s) for s in split_into_stages(nn.MlpBlock("m", 4, "relu", 3, 3, 3), 1)] == [3]


def test_split_into_stages_rejects_what_it_cannot_cut():
    with pytest.raises(ValueError, match=r"n must be an int from 1 to the number of layers \(3\), got 4"):
        split_into_stages([nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)], 4)
    with pytest.raises(TypeError, match="needs a SequentialBlock.*got Linear"):
        split_into_stages(nn.Linear(2, 2), 1)
    with pytest.raises(TypeError, match="item 1 is a int, not a Layer"):
        split_into_stages([nn.Linear(2, 2), 3], 2)


def test_bubble_fraction_and_the_drawn_schedule_agree():
    assert bubble_fraction(2, 4) == pytest.approx(1 / 5)
    assert bubble_fraction(1, 8) == 0
    assert bubble_fraction(4, 12) == pytest.approx(3 / 15)
    with pytest.raises(ValueError, match="bubble_fraction"):
        bubble_fraction(0, 3)
    for s, m in [(2, 4), (3, 4), (4, 2), (1, 3)]:
        rows = gpipe_schedule(s, m)
        assert all(len(row) == 2 * (m + s - 1) for row in rows)
        for row in rows:
            assert row.count("..") / len(row) == pytest.approx(bubble_fraction(s, m))
    assert format_schedule(2, 2).splitlines() == [
        "tick     0  1  2  3  4  5",
        "stage 0  F0 F1 .. .. B1 B0",
        "stage 1  .. F0 F1 B1 B0 ..",
    ]


def test_a_stage_that_never_answers_times_out_instead_of_hanging():
    import time

    class Slow(nn.Layer):
        def forward(self, x):
            time.sleep(0.6)
            return x

    pipe = PipelineParallel([nn.Linear(6, 3), Slow()], micro_batches=1, timeout=0.1)
    x, y = _batches(1, 2)[0]
    with pytest.raises(TimeoutError, match=r"PipelineParallel.step: no reply within 0.1 s"):
        pipe.step(x.astype(np.float32), y.astype(np.float32), MeanSquaredLoss())
    assert not pipe.alive and _live_pipeline_threads() == []  # shutdown waited for the sleeping stage


def test_an_error_during_inference_names_the_stage():
    with PipelineParallel([nn.Linear(6, 4), nn.Linear(5, 3)], micro_batches=2) as pipe:
        with pytest.raises(PipelineStageError, match=r"stage 1 \(Linear\) failed in the inference of micro-batch 0"):
            pipe.forward(np.ones((4, 6), np.float32))
        assert not pipe.alive
