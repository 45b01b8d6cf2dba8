"""Recurrent layers: SimpleRNN, LSTM and GRU (TinyAI's SimpleRnnLayer, LstmLayer, GruLayer).

Each layer can be driven two ways:

* one step at a time: ``layer(x_t)`` with x_t of shape (N, in) returns h_t of
  shape (N, hidden) and keeps h_t for the next call (TinyAI's way, used with
  truncated backpropagation through time);
* a whole sequence: ``layer(x)`` with x of shape (N, T, in) returns every
  h_t stacked, shape (N, T, hidden), and keeps the last state.

Either way the state is carried across calls until ``reset_state()``, so a
long sequence may be fed in chunks. ``cell(x_t, state)`` is the pure
single-step function (no carried state), and ``set_state`` installs an
initial state (a seq2seq decoder starts from the encoder's final state).

The input projection x W_x of all gates is one matrix product, and in
sequence mode it is done once for all T steps; only h W_h stays in the loop.
Weights: W_x (in, G*hidden), W_h (hidden, G*hidden), with G = 1 (RNN),
4 (LSTM) or 3 (GRU) gate blocks side by side in the order given below.

Truncated BPTT: after ``loss.backward()``, ``detach_state()`` (or the
trainer's ``loss.unchain_backward()``) cuts the graph behind the carried
state, so the next chunk does not backpropagate into the previous one.
"""
from __future__ import annotations

from typing import Any, Mapping

from tinyai import functions as F
from tinyai.autograd import Variable
from tinyai.backend import get_array_module
from tinyai.backend.settings import int_setting
from tinyai.nn.init import initialize
from tinyai.nn.layer import Layer, _check_variable
from tinyai.nn.parameter import Parameter


class _Recurrent(Layer):
    """What the three recurrent layers share: parameters, carried state, the step/sequence loop."""

    _transient = ("h", "c")
    _gates = 1
    _has_cell_state = False

    def __init__(self, in_features: int | None, hidden_size: int, name: str | None = None) -> None:
        super().__init__(name)
        in_features = int_setting(in_features, self._label(), "in_features", none_ok=True)
        hidden_size = int_setting(hidden_size, self._label(), "hidden_size")
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.h: Variable | None = None
        self.c: Variable | None = None
        if in_features is not None:
            self._build(in_features)

    # -- parameters --------------------------------------------------------------------
    def _build(self, in_features: int) -> None:
        self.in_features = in_features
        width = self._gates * self.hidden_size
        self.W_x = Parameter(initialize((in_features, width), in_features, self.hidden_size, "xavier"))
        self.W_h = Parameter(initialize((self.hidden_size, width), self.hidden_size, self.hidden_size, "xavier"))
        self._build_biases(width)

    def _build_biases(self, width: int) -> None:
        self.b = Parameter(initialize((width,), 1, 1, "zeros"))

    def _materialize(self, state: Mapping[str, Any]) -> None:
        if self.__dict__.get("W_x") is None and "W_x" in state:
            self._build(int(state["W_x"].shape[0]))

    def _input_projection(self, x: Variable) -> Variable:
        """x W_x + b for every gate at once; x of shape (..., in)."""
        return F.linear(x, self.W_x, self.b)

    # -- state -------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the carried state: the next call starts from zeros."""
        self.h = None
        self.c = None

    def set_state(self, h: Any, c: Any = None) -> None:
        """Start the next call from hidden state ``h`` (and, for an LSTM, cell state ``c``), shape (N, hidden).

        Gradients flow back into ``h`` and ``c`` when they are Variables with a history.
        """
        h = _check_variable(self, h, "hidden state")
        if h.ndim != 2 or h.shape[1] != self.hidden_size:
            raise ValueError(f"{self._label()}: hidden state must have shape (N, {self.hidden_size}), "
                             f"got {tuple(h.shape)}")
        if self._has_cell_state:
            if c is None:
                c = Variable(get_array_module(h.data).zeros_like(h.data), requires_grad=False)
            c = _check_variable(self, c, "cell state")
            if c.shape != h.shape:
                raise ValueError(f"{self._label()}: cell state has shape {tuple(c.shape)}, "
                                 f"the hidden state {tuple(h.shape)}")
        elif c is not None:
            raise ValueError(f"{self._label()}: has no cell state; pass only h")
        self.h, self.c = h, c

    @property
    def state(self) -> Any:
        """The carried state: h, or (h, c) for an LSTM; None before the first call."""
        if self.h is None:
            return None
        return (self.h, self.c) if self._has_cell_state else self.h

    def detach_state(self) -> None:
        """Keep the carried values but cut the graph behind them (truncated BPTT)."""
        if self.h is not None:
            self.h = self.h.detach()
        if self.c is not None:
            self.c = self.c.detach()

    def _initial_state(self, x: Variable) -> tuple[Variable, Variable | None]:
        batch = x.shape[0]
        if self.h is not None:
            if self.h.shape[0] != batch:
                raise ValueError(f"{self._label()}: the carried hidden state has batch size {self.h.shape[0]} "
                                 f"but the input has {batch}; call reset_state() before changing batch size")
            return self.h, self.c
        xp = get_array_module(x.data)
        zeros = xp.zeros((batch, self.hidden_size), dtype=self.W_h.dtype)
        c = Variable(zeros.copy(), requires_grad=False) if self._has_cell_state else None
        return Variable(zeros, requires_grad=False), c

    # -- running ----------------------------------------------------------------------
    def _check_input(self, x: Any) -> Variable:
        x = _check_variable(self, x)
        if x.ndim not in (2, 3):
            raise ValueError(f"{self._label()}: expected input of shape (N, in) for one step or (N, T, in) "
                             f"for a sequence, got {tuple(x.shape)}")
        if self.__dict__.get("W_x") is None:
            self._build(int(x.shape[-1]))
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{self._label()}: expected input with {self.in_features} features, "
                             f"got shape {tuple(x.shape)}")
        return x

    def forward(self, x: Any) -> Variable:
        """One step for x of shape (N, in) -> (N, hidden); a sequence for (N, T, in) -> (N, T, hidden)."""
        x = self._check_input(x)
        h, c = self._initial_state(x)
        if x.ndim == 2:
            h, c = self._step(self._input_projection(x), h, c)
            self.h, self.c = h, c
            return h
        steps = x.shape[1]
        projected = self._input_projection(x)  # (N, T, G*hidden), all steps in one product
        pieces = F.split(projected, steps, axis=1) if steps > 1 else (projected,)
        outputs = []
        for piece in pieces:
            h, c = self._step(F.reshape(piece, (piece.shape[0], piece.shape[2])), h, c)
            outputs.append(h)
        self.h, self.c = h, c
        return F.stack(outputs, axis=1)

    def step(self, x: Any) -> Variable:
        """One time step with the carried state: x (N, in) -> h (N, hidden)."""
        x = self._check_input(x)
        if x.ndim != 2:
            raise ValueError(f"{self._label()}.step: expected input of shape (N, in), got {tuple(x.shape)}")
        return self.forward(x)

    def cell(self, x: Any, state: Any = None) -> Any:
        """The pure single-step function: new state from x (N, in) and state, touching no carried state.

        ``state`` is h (or (h, c) for an LSTM), zeros when None. Returns the
        new h (or (h, c)).
        """
        x = self._check_input(x)
        if x.ndim != 2:
            raise ValueError(f"{self._label()}.cell: expected input of shape (N, in), got {tuple(x.shape)}")
        if state is None:
            saved = self.h, self.c
            self.h = self.c = None
            h, c = self._initial_state(x)
            self.h, self.c = saved
        elif self._has_cell_state:
            h, c = (_check_variable(self, s, "state") for s in state)
        else:
            h, c = _check_variable(self, state, "state"), None
        h, c = self._step(self._input_projection(x), h, c)
        return (h, c) if self._has_cell_state else h

    def _step(self, xw: Variable, h: Variable, c: Variable | None) -> tuple[Variable, Variable | None]:
        raise TypeError(f"{type(self).__name__} must define _step")

    def extra_repr(self) -> str:
        in_features = self.in_features if self.in_features is not None else "?"
        return f"{in_features} -> {self.hidden_size}"


class SimpleRNN(_Recurrent):
    """Elman recurrent layer (TinyAI's SimpleRnnLayer).

        h_t = tanh(x_t W_x + h_{t-1} W_h + b)

    Args:
        in_features: input size (None: inferred on the first call).
        hidden_size: size of h.
    """

    def _step(self, xw, h, c):
        return F.tanh(xw + F.matmul(h, self.W_h)), None


class LSTM(_Recurrent):
    """Long short-term memory (TinyAI's LstmLayer). With z = x_t W_x + h_{t-1} W_h + b
    cut into four blocks of ``hidden_size`` columns, in this order:

        i_t = sigmoid(z_i)                  input gate: how much new content to write
        f_t = sigmoid(z_f)                  forget gate: how much of the old cell to keep
        g_t = tanh(z_g)                     candidate content
        o_t = sigmoid(z_o)                  output gate: how much of the cell to show
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)

    The forget-gate bias starts at 1, so early in training the cell keeps its
    memory and gradients flow back over many steps. The carried state is (h, c).
    """

    _gates = 4
    _has_cell_state = True

    def _build_biases(self, width: int) -> None:
        b = initialize((width,), 1, 1, "zeros")
        b[self.hidden_size:2 * self.hidden_size] = 1.0
        self.b = Parameter(b)

    def _step(self, xw, h, c):
        z = xw + F.matmul(h, self.W_h)
        z_i, z_f, z_g, z_o = F.split(z, 4, axis=1)
        c = F.sigmoid(z_f) * c + F.sigmoid(z_i) * F.tanh(z_g)
        h = F.sigmoid(z_o) * F.tanh(c)
        return h, c


class GRU(_Recurrent):
    """Gated recurrent unit (TinyAI's GruLayer). Blocks in the order r, z, n:

        r_t = sigmoid(x_t W_xr + b_xr + h_{t-1} W_hr + b_hr)      reset gate
        z_t = sigmoid(x_t W_xz + b_xz + h_{t-1} W_hz + b_hz)      update gate
        n_t = tanh(x_t W_xn + b_xn + r_t * (h_{t-1} W_hn + b_hn))  candidate
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    The reset gate multiplies the hidden projection *including* its bias, so
    the input and hidden biases are separate Parameters, b_x and b_h
    (the formulation of cuDNN and PyTorch).
    """

    _gates = 3

    def _build_biases(self, width: int) -> None:
        self.b_x = Parameter(initialize((width,), 1, 1, "zeros"))
        self.b_h = Parameter(initialize((width,), 1, 1, "zeros"))

    def _input_projection(self, x: Variable) -> Variable:
        return F.linear(x, self.W_x, self.b_x)

    def _step(self, xw, h, c):
        hw = F.linear(h, self.W_h, self.b_h)
        x_r, x_z, x_n = F.split(xw, 3, axis=1)
        h_r, h_z, h_n = F.split(hw, 3, axis=1)
        r = F.sigmoid(x_r + h_r)
        z = F.sigmoid(x_z + h_z)
        n = F.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h, None
