"""Loss objects: values against plain-NumPy formulas, both calling orders, gradients, masks, errors."""
import numpy as np
import pytest

import tinyai
from tinyai.autograd import Variable
from tinyai.losses import (
    Huber,
    Loss,
    MaskedSoftmaxCrossEntropy,
    MeanSquaredLoss,
    SigmoidCrossEntropy,
    SoftmaxCrossEntropy,
)
from tinyai.testing import gradcheck


def np_log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_token_nll(logits, labels):
    """-log softmax(x)[label] for every position (no reduction)."""
    logp = np_log_softmax(logits)
    return -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


# -- softmax cross-entropy ---------------------------------------------------------------
def test_softmax_cross_entropy_value_and_both_calling_orders(rng):
    x = rng.normal(size=(6, 4))
    t = rng.integers(0, 4, size=6)
    want = np_token_nll(x, t).mean()
    loss = SoftmaxCrossEntropy()
    assert isinstance(loss, Loss)
    assert float(loss.loss(t, x).data) == pytest.approx(want, rel=1e-12)   # TinyAI: (target, prediction)
    assert float(loss(x, t).data) == pytest.approx(want, rel=1e-12)        # PyTorch: (prediction, target)
    assert loss(x, t).shape == ()


def test_softmax_cross_entropy_uniform_logits_give_log_c():
    assert float(SoftmaxCrossEntropy()(np.zeros((3, 5)), np.array([0, 2, 4])).data) == pytest.approx(np.log(5))


def test_softmax_cross_entropy_accepts_tinyai_label_columns_and_float_labels(rng):
    x = rng.normal(size=(5, 3))
    t = rng.integers(0, 3, size=5)
    want = np_token_nll(x, t).mean()
    loss = SoftmaxCrossEntropy()
    assert float(loss(x, t.reshape(5, 1)).data) == pytest.approx(want)
    assert float(loss(x, t.astype(np.float32)).data) == pytest.approx(want)
    with pytest.raises(ValueError, match="SoftmaxCrossEntropy: float labels must hold whole class indices"):
        loss(x, t + 0.5)


def test_softmax_cross_entropy_soft_targets(rng):
    x = rng.normal(size=(4, 3))
    t = rng.integers(0, 3, size=4)
    onehot = np.eye(3)[t]
    assert float(SoftmaxCrossEntropy()(x, onehot).data) == pytest.approx(np_token_nll(x, t).mean())
    smooth = 0.9 * onehot + 0.1 / 3
    want = -(smooth * np_log_softmax(x)).sum(axis=1).mean()
    assert float(SoftmaxCrossEntropy()(x, smooth).data) == pytest.approx(want)
    gradcheck(lambda logits: SoftmaxCrossEntropy()(logits, smooth), x, seed=1)


def test_softmax_cross_entropy_sequences_and_gradient(rng):
    x = rng.normal(size=(2, 3, 4))
    t = rng.integers(0, 4, size=(2, 3))
    assert float(SoftmaxCrossEntropy()(x, t).data) == pytest.approx(np_token_nll(x, t).mean())
    gradcheck(lambda logits: SoftmaxCrossEntropy()(logits, t), x, seed=2)


def test_softmax_cross_entropy_errors_name_the_loss_and_shapes():
    loss = SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: labels of shape \(3,\) do not match logits "
                                         r"of shape \(4, 5\); expected labels of shape \(4,\)"):
        loss(np.zeros((4, 5)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: .*labels must lie in \[0, 5\), got values from 0 to 7"):
        loss(np.zeros((2, 5)), np.array([0, 7]))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: .*\[0, 5\), got values from -1"):
        loss(np.zeros((2, 5)), np.array([-1, 2]))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: logits need shape \(N, C\)"):
        loss(np.zeros(5), np.array([1]))


# -- masked softmax cross-entropy ------------------------------------------------------------
@pytest.fixture
def padded_batch(rng):
    x = rng.normal(size=(3, 4, 5))
    t = rng.integers(0, 5, size=(3, 4))
    lengths = np.array([4, 2, 1])
    mask = np.arange(4)[None, :] < lengths[:, None]
    t[~mask] = 99  # padding filler, out of range: must never be read
    return x, t, mask, lengths


def test_masked_loss_is_the_mean_over_real_tokens_only(padded_batch):
    x, t, mask, lengths = padded_batch
    want = np_token_nll(x[mask], t[mask]).mean()   # 7 real tokens
    loss = MaskedSoftmaxCrossEntropy()
    assert float(loss(x, t, mask).data) == pytest.approx(want, rel=1e-12)
    assert float(loss(x, t, mask.astype(np.float32)).data) == pytest.approx(want, rel=1e-12)
    assert float(loss(x, t, lengths).data) == pytest.approx(want, rel=1e-12)          # 1-D: valid lengths
    assert float(loss(x, t, valid_lens=lengths).data) == pytest.approx(want, rel=1e-12)
    assert float(loss.loss(t, x, mask).data) == pytest.approx(want, rel=1e-12)
    assert float(MaskedSoftmaxCrossEntropy(ignore_index=99)(x, t).data) == pytest.approx(want, rel=1e-12)


def test_masked_loss_ignores_padding_logits_and_gets_no_gradient_there(padded_batch):
    x, t, mask, lengths = padded_batch
    loss = MaskedSoftmaxCrossEntropy()
    changed = x.copy()
    changed[~mask] += 100.0
    assert float(loss(changed, t, mask).data) == pytest.approx(float(loss(x, t, mask).data), rel=1e-12)
    logits = Variable(x)
    loss(logits, t, mask).backward()
    assert not logits.grad.data[~mask].any()
    # Each real token's gradient is (softmax - onehot) / number of real tokens.
    p = np.exp(np_log_softmax(x))
    want = (p - np.eye(5)[np.where(mask, t, 0)]) / mask.sum()
    np.testing.assert_allclose(logits.grad.data[mask], want[mask], rtol=1e-10)
    gradcheck(lambda v: loss(v, t, mask), x, seed=3)


def test_masked_loss_without_mask_equals_the_plain_loss(rng):
    x = rng.normal(size=(2, 3, 4))
    t = rng.integers(0, 4, size=(2, 3))
    assert float(MaskedSoftmaxCrossEntropy()(x, t).data) == pytest.approx(float(SoftmaxCrossEntropy()(x, t).data))


def test_masked_loss_errors(padded_batch):
    x, t, mask, lengths = padded_batch
    loss = MaskedSoftmaxCrossEntropy()
    with pytest.raises(ValueError, match="MaskedSoftmaxCrossEntropy: every token of the batch is masked"):
        loss(x, t, np.zeros_like(mask))
    with pytest.raises(ValueError, match=r"MaskedSoftmaxCrossEntropy: mask of shape \(3, 2\) does not match"):
        loss(x, t, mask[:, :2])
    with pytest.raises(ValueError, match=r"MaskedSoftmaxCrossEntropy: valid_lens must lie in \[0, 4\]"):
        loss(x, t, np.array([4, 5, 1]))
    with pytest.raises(ValueError, match=r"MaskedSoftmaxCrossEntropy: logits need shape \(N, T, C\)"):
        loss(x[0], t[0], mask[0])
    with pytest.raises(ValueError, match=r"MaskedSoftmaxCrossEntropy: labels of shape \(3, 3\)"):
        loss(x, t[:, :3], mask)
    with pytest.raises(ValueError, match=r"MaskedSoftmaxCrossEntropy: .*labels must lie in \[0, 5\)"):
        loss(x, t, np.ones_like(mask))  # now the filler 99 counts: out of range
    with pytest.raises(ValueError, match="either mask or valid_lens"):
        loss(x, t, mask, valid_lens=lengths)


# -- regression losses ----------------------------------------------------------------------------
def test_mean_squared_loss_value_gradient_and_dtype(rng):
    y = rng.normal(size=(5, 2))
    t = rng.normal(size=(5, 2))
    assert float(MeanSquaredLoss()(y, t).data) == pytest.approx(((y - t) ** 2).mean(), rel=1e-12)
    assert float(MeanSquaredLoss().loss(t, y).data) == pytest.approx(((y - t) ** 2).mean(), rel=1e-12)
    gradcheck(lambda a, b: MeanSquaredLoss()(a, b), y, t, seed=4)
    # Integer targets do not promote a float32 prediction.
    out = MeanSquaredLoss()(Variable(y.astype(np.float32)), np.ones((5, 2), dtype=np.int64))
    assert out.dtype == np.float32


def test_mean_squared_loss_refuses_broadcastable_but_different_shapes():
    with pytest.raises(ValueError, match=r"MeanSquaredLoss: prediction of shape \(4, 1\) and target of shape "
                                         r"\(4,\) differ; reshape the target to \(4, 1\)"):
        MeanSquaredLoss()(np.zeros((4, 1)), np.zeros(4))


def test_huber_matches_piecewise_formula(rng):
    y = rng.normal(scale=2.0, size=(6, 3))
    t = rng.normal(size=(6, 3))
    d = y - t
    for delta in (0.5, 1.0, 3.0):
        want = np.where(np.abs(d) <= delta, 0.5 * d ** 2, delta * (np.abs(d) - 0.5 * delta)).mean()
        assert float(Huber(delta)(y, t).data) == pytest.approx(want, rel=1e-12)
    gradcheck(lambda a: Huber(0.7)(a, t), y, seed=5)
    with pytest.raises(ValueError, match="Huber: delta must be > 0"):
        Huber(0.0)
    with pytest.raises(ValueError, match=r"Huber: prediction of shape \(6, 3\) and target of shape \(3,\)"):
        Huber()(y, t[0])


# -- sigmoid cross-entropy ----------------------------------------------------------------------
def test_sigmoid_cross_entropy_value_and_gradient(rng):
    x = rng.normal(scale=3.0, size=(4, 3))
    t = rng.integers(0, 2, size=(4, 3)).astype(np.float64)
    s = 1 / (1 + np.exp(-x))
    want = -(t * np.log(s) + (1 - t) * np.log(1 - s)).mean()
    assert float(SigmoidCrossEntropy()(x, t).data) == pytest.approx(want, rel=1e-10)
    assert float(SigmoidCrossEntropy().loss(t.astype(np.int64), x).data) == pytest.approx(want, rel=1e-10)
    gradcheck(lambda a: SigmoidCrossEntropy()(a, t), x, seed=6)


def test_sigmoid_cross_entropy_errors():
    with pytest.raises(ValueError, match=r"SigmoidCrossEntropy: targets must lie in \[0, 1\], got values from 0 to 2"):
        SigmoidCrossEntropy()(np.zeros(3), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"SigmoidCrossEntropy: logits of shape \(3,\) and targets of shape \(3, 1\)"):
        SigmoidCrossEntropy()(np.zeros(3), np.zeros((3, 1)))


# -- backends --------------------------------------------------------------------------------------
def test_losses_run_on_every_backend(xp, to_xp, padded_batch):
    """The stand-in refuses NumPy on device arrays: the losses must use xp throughout."""
    x, t, mask, lengths = padded_batch
    y = x[:, 0, :]
    cases = [
        (SoftmaxCrossEntropy(), (x[:, 0, :], t[:, 0].clip(0, 4))),
        (MaskedSoftmaxCrossEntropy(), (x, t, mask)),
        (MaskedSoftmaxCrossEntropy(), (x, t, lengths)),
        (MeanSquaredLoss(), (y, y[::-1].copy())),
        (Huber(), (y, y[::-1].copy())),
        (SigmoidCrossEntropy(), (y, (y > 0).astype(np.float64))),
    ]
    for loss, args in cases:
        want = float(loss(*args).data)
        converted = [Variable(to_xp(args[0]))] + [to_xp(a) for a in args[1:]]
        out = loss(*converted)
        assert float(tinyai.to_cpu(out.data)) == pytest.approx(want, rel=1e-12), repr(loss)
        out.backward()
        assert tinyai.get_array_module(converted[0].grad.data) is xp
