"""Each optimizer against its textbook update rule, and on convex problems with known minima.

The reference rules are written here in plain NumPy, from the papers'
formulas, independently of tinyai's code (Momentum in particular in
PyTorch's buffer form, which is the same trajectory as tinyai's form only
if both are right).
"""
import numpy as np
import pytest

import tinyai.functions as F
from tinyai.nn import Linear, Parameter
from tinyai.optim import SGD, AdaGrad, Adam, AdamW, Momentum, RMSprop

# The problem: f(p) = 0.5 * sum(a * p**2) + sum(b * p), gradient a * p + b,
# minimum at p* = -b / a.
A = np.array([1.0, 4.0, 0.5])
B = np.array([-2.0, 1.0, 0.25])
P0 = np.array([1.5, -2.0, 3.0])
MINIMUM = -B / A


def loss_of(p):
    return F.sum(0.5 * A * p * p) + F.sum(B * p)


def grad_np(p):
    return A * p + B


def run(optimizer_cls, steps, p0=P0, **kwargs):
    """The trajectory of tinyai's optimizer (float64) through real backward passes."""
    p = Parameter(p0.copy())
    opt = optimizer_cls([("p", p)], **kwargs)
    path = []
    for _ in range(steps):
        p.clear_grad()
        loss_of(p).backward()
        opt.update()
        path.append(p.data.copy())
    return path


# -- textbook references --------------------------------------------------------------------
def ref_sgd(steps, lr, weight_decay=0.0):
    p, path = P0.copy(), []
    for _ in range(steps):
        g = grad_np(p) + weight_decay * p
        p = p - lr * g
        path.append(p)
    return path


def ref_momentum(steps, lr, mu, nesterov=False, weight_decay=0.0):
    # PyTorch's form: b <- mu b + g; p <- p - lr b   (nesterov: p <- p - lr (g + mu b))
    p, b, path = P0.copy(), np.zeros(3), []
    for _ in range(steps):
        g = grad_np(p) + weight_decay * p
        b = mu * b + g
        p = p - lr * (g + mu * b if nesterov else b)
        path.append(p)
    return path


def ref_adagrad(steps, lr, eps):
    p, h, path = P0.copy(), np.zeros(3), []
    for _ in range(steps):
        g = grad_np(p)
        h = h + g ** 2
        p = p - lr * g / (np.sqrt(h) + eps)
        path.append(p)
    return path


def ref_rmsprop(steps, lr, rho, eps):
    p, h, path = P0.copy(), np.zeros(3), []
    for _ in range(steps):
        g = grad_np(p)
        h = rho * h + (1 - rho) * g ** 2
        p = p - lr * g / (np.sqrt(h) + eps)
        path.append(p)
    return path


def ref_adam(steps, lr, b1, b2, eps, l2=0.0, decoupled=0.0):
    # Kingma & Ba, Algorithm 1; AdamW per Loshchilov & Hutter: p <- p - lr (adam + wd p).
    p, m, v, path = P0.copy(), np.zeros(3), np.zeros(3), []
    for t in range(1, steps + 1):
        g = grad_np(p) + l2 * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * (m_hat / (np.sqrt(v_hat) + eps) + decoupled * p)
        path.append(p)
    return path


CASES = [
    ("sgd", SGD, dict(lr=0.1), lambda n: ref_sgd(n, 0.1)),
    ("sgd-wd", SGD, dict(lr=0.1, weight_decay=0.3), lambda n: ref_sgd(n, 0.1, 0.3)),
    ("momentum", Momentum, dict(lr=0.05, momentum=0.8), lambda n: ref_momentum(n, 0.05, 0.8)),
    ("nesterov", Momentum, dict(lr=0.05, momentum=0.8, nesterov=True),
     lambda n: ref_momentum(n, 0.05, 0.8, nesterov=True)),
    ("momentum-wd", Momentum, dict(lr=0.05, momentum=0.5, weight_decay=0.1),
     lambda n: ref_momentum(n, 0.05, 0.5, weight_decay=0.1)),
    ("adagrad", AdaGrad, dict(lr=0.3, eps=1e-7), lambda n: ref_adagrad(n, 0.3, 1e-7)),
    ("rmsprop", RMSprop, dict(lr=0.02, decay=0.9, eps=1e-7), lambda n: ref_rmsprop(n, 0.02, 0.9, 1e-7)),
    ("adam", Adam, dict(lr=0.1, beta1=0.8, beta2=0.95, eps=1e-6), lambda n: ref_adam(n, 0.1, 0.8, 0.95, 1e-6)),
    ("adam-l2", Adam, dict(lr=0.1, weight_decay=0.2), lambda n: ref_adam(n, 0.1, 0.9, 0.999, 1e-8, l2=0.2)),
    ("adamw", AdamW, dict(lr=0.1, weight_decay=0.2), lambda n: ref_adam(n, 0.1, 0.9, 0.999, 1e-8, decoupled=0.2)),
]


@pytest.mark.parametrize("label, cls, kwargs, reference", CASES, ids=[c[0] for c in CASES])
def test_update_rule_matches_textbook_formula(label, cls, kwargs, reference):
    got = run(cls, 5, **kwargs)
    want = reference(5)
    for step, (g, w) in enumerate(zip(got, want), start=1):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"{label}, step {step}")


def test_hand_computed_first_steps():
    # SGD, lr 0.1 on f = 0.5 sum(a p^2) + b.p from p0: p1 = p0 - 0.1 (a p0 + b).
    # p0 = (1.5, -2, 3): grads (-0.5, -7, 1.75) -> p1 = (1.55, -1.3, 2.825)
    np.testing.assert_allclose(run(SGD, 1, lr=0.1)[0], [1.55, -1.3, 2.825], rtol=1e-12)
    # Adam's first step is lr * sign(g) (m_hat / sqrt(v_hat) = g / |g|), up to eps.
    step = run(Adam, 1, lr=0.01)[0] - P0
    np.testing.assert_allclose(step, -0.01 * np.sign(grad_np(P0)), rtol=1e-6)
    # Momentum's second step: v1 = -lr g0, v2 = mu v1 - lr g1.
    p1, p2 = run(Momentum, 2, lr=0.1, momentum=0.5)
    g0, g1 = grad_np(P0), grad_np(P0 - 0.1 * grad_np(P0))
    np.testing.assert_allclose(p1, P0 - 0.1 * g0, rtol=1e-12)
    np.testing.assert_allclose(p2, p1 + 0.5 * (-0.1 * g0) - 0.1 * g1, rtol=1e-12)


CONVERGE = [
    (SGD, dict(lr=0.2), 300),
    (Momentum, dict(lr=0.1, momentum=0.9), 400),
    (Momentum, dict(lr=0.1, momentum=0.9, nesterov=True), 400),
    (AdaGrad, dict(lr=0.5), 1000),
    (RMSprop, dict(lr=0.003), 2000),
    (Adam, dict(lr=0.05), 1500),
    (AdamW, dict(lr=0.05, weight_decay=0.0), 1500),
]


@pytest.mark.parametrize("cls, kwargs, steps", CONVERGE, ids=lambda v: getattr(v, "__name__", None))
def test_reaches_the_minimum_of_a_convex_quadratic(cls, kwargs, steps):
    final = run(cls, steps, **kwargs)[-1]
    np.testing.assert_allclose(final, MINIMUM, atol=2e-2)


def test_adamw_decay_is_decoupled_from_gradient_scaling():
    # A zero gradient with weight decay: Adam's L2 term g = wd p is normalised
    # by sqrt(v_hat), so p moves by ~lr; AdamW shrinks p by the factor (1 - lr wd).
    for cls, expected in ((Adam, 1.0 - 0.1), (AdamW, 1.0 * (1 - 0.1 * 0.01))):
        p = Parameter(np.array([1.0]))
        opt = cls([p], lr=0.1, weight_decay=0.01)
        p.grad = Parameter(np.array([0.0]))
        opt.update()
        np.testing.assert_allclose(p.data, [expected], rtol=1e-6, err_msg=cls.__name__)


def test_linear_least_squares_reaches_lstsq_solution(rng):
    x = rng.normal(size=(64, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3 + 0.05 * rng.normal(size=(64, 1))
    model = Linear(3, 1)
    model.W.data = model.W.data.astype(np.float64)
    model.b.data = model.b.data.astype(np.float64)
    opt = Adam(model, lr=0.05)
    for _ in range(800):
        model.clear_grads()
        F.mean_squared_error(model(x), y).backward()
        opt.update()
    design = np.hstack([x, np.ones((64, 1))])
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(model.W.data, solution[:3], atol=1e-3)
    np.testing.assert_allclose(model.b.data, solution[3], atol=1e-3)
