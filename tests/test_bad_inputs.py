"""Bad input across the public API: each case gives the error class and the words its message must hold.

A table, so that the adversarial pass that found obscure errors and silent
acceptances stays fixed: every row is one input a user could write, the
exception it must raise, and words that make the message useful (the
operation, the setting, the value or shape at fault).
"""
import datetime

import numpy as np
import pytest

import tinyai as ta
import tinyai.functions as F
from tinyai import nn, optim
from tinyai.data import ArrayDataset
from tinyai.training import Trainer

CASES = []


def case(name, error, words, thunk):
    CASES.append(pytest.param(thunk, error, words, id=name))


def f32(*shape):
    return np.ones(shape, np.float32)


def var(*shape):
    return ta.Variable(np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) + 1)


# -- Variable: only numbers, and only numbers that fit --------------------------------------------
for label, value in [("str", "abc"), ("bytes", b"abc"), ("None", None), ("datetime", datetime.datetime(2020, 1, 1)),
                     ("date", datetime.date(2020, 1, 1)), ("dict", {1: 2}), ("set", {1, 2}), ("object", object())]:
    case(f"Variable({label})", TypeError, ["Variable", "cannot hold", "numbers"], lambda v=value: ta.Variable(v))
for label, array in [("str array", np.array(["a", "b"])), ("bytes array", np.array([b"a"])),
                     ("object array", np.array([1, 2], dtype=object)),
                     ("datetime64 array", np.array(["2020-01-01"], dtype="datetime64[D]")),
                     ("timedelta64 array", np.array([1], dtype="timedelta64[s]")),
                     ("void array", np.zeros(2, dtype=[("a", "i4")])),
                     ("mixed list", [1, "a"])]:
    case(f"Variable({label})", TypeError, ["Variable", "cannot hold"], lambda a=array: ta.Variable(a))
for label, value, shown in [("1e300", [1e300], "1e+300"), ("-1e39", [-1e39], "-1e+39"), ("nested", [[1.0, 5e38]], "5e+38"),
                            ("scalar", 1e40, "1e+40")]:
    case(f"Variable overflow {label}", ValueError, ["Variable", shown, "float32"], lambda v=value: ta.Variable(v))

# -- arithmetic with things that are not numbers -----------------------------------------------------
BAD_OPERANDS = [("None", None, "None"), ("str", "2", "'2'"), ("bytes", b"2", "b'2'"), ("object", object(), "object"),
                ("datetime", datetime.datetime(2020, 1, 1), "datetime"), ("str list", ["a"], "list"),
                ("dict", {}, "dict")]
OPS = [("add", lambda x, v: x + v), ("sub", lambda x, v: x - v), ("mul", lambda x, v: x * v),
       ("div", lambda x, v: x / v), ("pow", lambda x, v: x ** v)]
for op, apply in OPS:
    for label, value, shown in BAD_OPERANDS:
        case(f"x {op} {label}", TypeError, [op, "unsupported operand", shown],
             lambda apply=apply, value=value: apply(var(3), value))
for op, apply in [("add", lambda x, v: v + x), ("sub", lambda x, v: v - x), ("mul", lambda x, v: v * x),
                  ("div", lambda x, v: v / x), ("pow", lambda x, v: v ** x)]:
    for label, value, shown in BAD_OPERANDS[:3]:
        case(f"{label} {op} x", TypeError, [op, shown], lambda apply=apply, value=value: apply(var(3), value))
for op, fn in [("add", F.add), ("mul", F.mul), ("maximum", F.maximum), ("minimum", F.minimum)]:
    case(f"F.{op} str array", TypeError, [op, "dtype <U1"], lambda fn=fn: fn(var(2), np.array(["a", "b"])))
    case(f"F.{op} None", TypeError, [op, "None"], lambda fn=fn: fn(var(2), None))
case("add shapes", ValueError, ["add", "(2, 3)", "(4,)", "broadcast"], lambda: var(2, 3) + f32(4))
case("mul shapes", ValueError, ["mul", "(2, 3)", "(3, 2)"], lambda: var(2, 3) * f32(3, 2))
case("matmul shapes", ValueError, ["matmul", "(2, 3)"], lambda: F.matmul(var(2, 3), f32(2, 3)))
case("matmul scalar", ValueError, ["matmul", "scalar"], lambda: F.matmul(np.float32(1), f32(2, 3)))
case("linear features", ValueError, ["linear", "(2, 3)", "(4, 2)"], lambda: F.linear(var(2, 3), f32(4, 2)))

# -- axes ----------------------------------------------------------------------------------------
for axis in (3, -4, 10):
    case(f"expand_dims axis {axis}", ValueError, ["expand_dims", f"axis {axis}", "out of range", "-3 to 2"],
         lambda a=axis: F.expand_dims(var(2, 3), a))
for axis in (2, -3):
    case(f"squeeze axis {axis}", ValueError, ["squeeze", f"axis {axis}", "out of range"],
         lambda a=axis: F.squeeze(var(1, 3), a))
    case(f"swapaxes axis1 {axis}", ValueError, ["swapaxes", f"axis1 {axis}", "out of range"],
         lambda a=axis: F.swapaxes(var(2, 3), a, 0))
    case(f"swapaxes axis2 {axis}", ValueError, ["swapaxes", f"axis2 {axis}", "out of range"],
         lambda a=axis: F.swapaxes(var(2, 3), 0, a))
    case(f"concat axis {axis}", ValueError, ["concat", f"axis {axis}", "out of range"],
         lambda a=axis: F.concat([var(2, 3), var(2, 3)], axis=a))
    case(f"split axis {axis}", ValueError, ["split", f"axis {axis}", "out of range"],
         lambda a=axis: F.split(var(2, 4), 2, axis=a))
    case(f"sum axis {axis}", ValueError, ["sum", f"axis {axis}", "out of range"], lambda a=axis: F.sum(var(2, 3), axis=a))
case("squeeze 0-d", ValueError, ["squeeze", "axis 0", "0-dimensional"], lambda: F.squeeze(ta.Variable(np.float32(2)), 0))
case("squeeze size 3", ValueError, ["squeeze", "size 3", "not 1"], lambda: F.squeeze(var(1, 3), 1))
case("swapaxes 0-d", ValueError, ["swapaxes", "0-dimensional"], lambda: F.swapaxes(ta.Variable(np.float32(2)), 0, 0))
case("swapaxes str axis", TypeError, ["swapaxes", "axis1 must be an int", "str"], lambda: F.swapaxes(var(2, 3), "0", 1))
case("expand_dims float axis", TypeError, ["expand_dims", "must be an int", "1.0"], lambda: F.expand_dims(var(2), 1.0))
case("transpose too few axes", ValueError, ["transpose", "(1,)", "has 2"], lambda: F.transpose(var(2, 3), (1,)))
case("transpose out of range", ValueError, ["transpose", "axes entry 2", "out of range"], lambda: F.transpose(var(2, 3), (0, 2)))
case("transpose repeated", ValueError, ["transpose", "(1, 1)", "not a permutation"], lambda: F.transpose(var(2, 3), (1, 1)))
case("transpose int axes", TypeError, ["transpose", "sequence of ints"], lambda: F.transpose(var(2, 3), 1))
case("transpose 0-d axes", ValueError, ["transpose", "(0,)", "has 0"], lambda: F.transpose(ta.Variable(np.float32(1)), (0,)))
case("concat ndim mismatch", ValueError, ["concat", "same number of dimensions", "(2, 3)", "(3,)"],
     lambda: F.concat([var(2, 3), var(3)]))
case("concat 0-d", ValueError, ["concat", "0-dimensional"], lambda: F.concat([ta.Variable(np.float32(1))] * 2))
case("concat empty", ValueError, ["concat", "at least one"], lambda: F.concat([]))
case("concat shapes", ValueError, ["concat", "(2, 3)", "(2, 4)", "axis 0"], lambda: F.concat([var(2, 3), var(2, 4)]))
case("stack axis", ValueError, ["stack", "axis 3", "out of range"], lambda: F.stack([var(2), var(2)], axis=3))
case("stack shapes", ValueError, ["stack", "same shape"], lambda: F.stack([var(2), var(3)]))
case("split sections 0", ValueError, ["split", "sections", "0"], lambda: F.split(var(4), 0))
case("split uneven", ValueError, ["split", "(5,)", "3"], lambda: F.split(var(5), 3))
case("reshape str shape", TypeError, ["reshape", "must be ints", "'23'"], lambda: F.reshape(var(6), "23"))
case("reshape float shape", TypeError, ["reshape", "must be ints", "2.0"], lambda: F.reshape(var(6), (2.0, 3)))
for fn_name, fn in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
    case(f"{fn_name} axis 2", ValueError, [fn_name, "axis 2", "out of range"], lambda fn=fn: fn(var(2, 3), axis=2))
    case(f"{fn_name} str axis", TypeError, [fn_name, "must be an int"], lambda fn=fn: fn(var(2, 3), axis="1"))
case("clip NaN bound", ValueError, ["clip", "NaN", "None"], lambda: F.clip(var(3), float("nan"), 1.0))
case("leaky_relu slope str", ValueError, ["leaky_relu", "slope", "'0.1'"], lambda: F.leaky_relu(var(3), "0.1"))
case("LeakyReLU slope str", ValueError, ["LeakyReLU", "slope", "'0.1'"], lambda: nn.LeakyReLU("0.1"))
for delta in (0, -1.0, float("nan"), "1"):
    case(f"huber_loss delta {delta!r}", ValueError, ["huber_loss", "delta", "> 0", repr(delta)],
         lambda d=delta: F.huber_loss(f32(2), f32(2), delta=d))
case("clip lo > hi", ValueError, ["clip", "lo=2", "hi=1", "empty"], lambda: F.clip(var(3), 2, 1))
case("clip str bound", TypeError, ["clip", "'1'"], lambda: F.clip(var(3), "1", None))
case("reshape size", ValueError, ["reshape", "(6,)", "(4, 2)"], lambda: F.reshape(var(6), (4, 2)))
case("get_item out of bounds", IndexError, ["get_item", "index 5", "(3,)"], lambda: var(3)[5])

# -- integer settings: refused when not positive ints (NumPy integers are accepted, see below) -------------
for label, value in [("0", 0), ("-1", -1), ("2.5", 2.5), ("3.0", 3.0), ("True", True), ("'3'", "3"), ("None", None)]:
    case(f"Linear out_features {label}", ValueError, ["Linear", "out_features", "positive int"],
         lambda v=value: nn.Linear(2, v))
    case(f"Embedding num_embeddings {label}", ValueError, ["Embedding", "num_embeddings"],
         lambda v=value: nn.Embedding(v, 3))
    if label != "0":
        case(f"Trainer max_epoch {label}", ValueError, ["Trainer", "max_epoch"], lambda v=value: Trainer(v))
for label, value in [("0", 0), ("2.0", 2.0), ("True", True)]:
    case(f"Linear in_features {label}", ValueError, ["Linear", "in_features", "or None"], lambda v=value: nn.Linear(v, 2))
    case(f"Conv2d out_channels {label}", ValueError, ["Conv2d", "out_channels"], lambda v=value: nn.Conv2d(1, v, 3))
    case(f"Conv2d kernel_size {label}", ValueError, ["Conv2d", "kernel_size"], lambda v=value: nn.Conv2d(1, 2, v))
    case(f"BatchNorm num_features {label}", ValueError, ["num_features"], lambda v=value: nn.BatchNorm1d(v))
    case(f"LayerNorm normalized_shape {label}", ValueError, ["normalized_shape"], lambda v=value: nn.LayerNorm(v))
    case(f"MultiHeadAttention d_model {label}", ValueError, ["MultiHeadAttention", "d_model"],
         lambda v=value: nn.MultiHeadAttention(v, 1))
    case(f"Trainer accumulate_steps {label}", ValueError, ["accumulate_steps"],
         lambda v=value: Trainer(1, accumulate_steps=v))
    case(f"ArrayDataset batch_size {label}", ValueError, ["ArrayDataset", "batch_size"],
         lambda v=value: ArrayDataset(f32(4, 2), np.zeros(4), v))
for label, shape in [("2.5", (2.5,)), ("'3'", ("3",)), ("0", (0, 2)), ("two -1", (-1, -1)), ("int", 6)]:
    case(f"Reshape shape {label}", ValueError, ["Reshape", "shape", "positive ints", repr(shape)],
         lambda s=shape: nn.Reshape(s))
case("MultiHeadAttention dropout str", ValueError, ["MultiHeadAttention", "dropout", "'0.1'"],
     lambda: nn.MultiHeadAttention(4, 2, dropout="0.1"))
case("Conv2d stride pair of 3", ValueError, ["Conv2d", "stride"], lambda: nn.Conv2d(1, 2, 3, stride=(1, 1, 1)))
case("Conv2d pad -1", ValueError, ["Conv2d", "pad", ">= 0"], lambda: nn.Conv2d(1, 2, 3, pad=-1))
case("Conv2d kernel str", ValueError, ["Conv2d", "kernel_size", "'3'"], lambda: nn.Conv2d(1, 2, "3"))
case("Trainer eval_every -1", ValueError, ["eval_every"], lambda: Trainer(1, eval_every=-1))
case("Trainer thread_count -1", ValueError, ["thread_count"], lambda: Trainer(1, thread_count=-1))
case("Trainer on_nan", ValueError, ["on_nan", "'raise', 'warn', 'skip'", "'ignore'"], lambda: Trainer(1, on_nan="ignore"))
case("Trainer on_error", ValueError, ["on_error", "'later'"], lambda: Trainer(1, on_error="later"))
case("Trainer backend", ValueError, ["backend", "'gpu'"], lambda: Trainer(1, parallel_backend="gpu"))
case("Trainer progress", ValueError, ["progress"], lambda: Trainer(1, progress="fancy"))
case("Trainer checkpoint_path int", TypeError, ["checkpoint_path", "int 3"], lambda: Trainer(1, checkpoint_path=3))
case("Trainer enable_parallel str", TypeError, ["enable_parallel", "'no'"], lambda: Trainer(1, enable_parallel="no"))
for norm in ("BatchNorm1d", "LayerNorm"):
    case(f"{norm} eps str", ValueError, [norm, "eps must be positive", "'a'"],
         lambda norm=norm: getattr(nn, norm)(3, eps="a"))
case("BatchNorm1d momentum str", ValueError, ["BatchNorm1d", "momentum"], lambda: nn.BatchNorm1d(3, momentum="0.9"))
case("seed str", ValueError, ["seed", "non-negative int", "'a'"], lambda: ta.seed("a"))
case("seed -1", ValueError, ["seed", "-1"], lambda: ta.seed(-1))
for op, fn, x in [("broadcast_to", F.broadcast_to, var(3)), ("sum_to", F.sum_to, var(2, 3))]:
    for label, shape in [("float", (1.0, 3)), ("str", ("2", 3)), ("int", 3), ("negative", (-1, 3)),
                         ("bool", (True, 3)), ("negative NumPy int", (np.int64(-1), 3))]:
        case(f"{op} shape {label}", TypeError, [op, "shape", "ints", repr(shape) if label != "int" else "int 3"],
             lambda fn=fn, x=x, shape=shape: fn(x, shape))
case("split 2.5 sections", TypeError, ["split", "indices_or_sections", "2.5"], lambda: F.split(var(4), 2.5))
case("split True sections", TypeError, ["split", "indices_or_sections", "True"], lambda: F.split(var(4), True))
case("cast unknown dtype", TypeError, ["cast", "'float33'", "not a dtype"], lambda: F.cast(var(2), "float33"))
for eps in (-1e-5, float("nan"), float("inf"), "1e-5"):
    case(f"layer_norm eps {eps!r}", ValueError, ["layer_norm", "eps must be >= 0", repr(eps)],
         lambda e=eps: F.layer_norm(var(2, 3), f32(3), f32(3), eps=e))
    case(f"batch_norm eps {eps!r}", ValueError, ["batch_norm", "eps must be >= 0", repr(eps)],
         lambda e=eps: F.batch_norm(var(2, 3), f32(3), f32(3), f32(3), f32(3), eps=e))
case("batch_norm momentum str", ValueError, ["batch_norm", "momentum", "'0.9'"],
     lambda: F.batch_norm(var(2, 3), f32(3), f32(3), f32(3), f32(3), momentum="0.9"))
case("sum_to bad shape", ValueError, ["sum_to", "(2, 3)", "(4,)"], lambda: F.sum_to(var(2, 3), (4,)))
case("sum_to transposed", ValueError, ["sum_to", "(2, 3)", "(3, 2)"], lambda: F.sum_to(var(2, 3), (3, 2)))
case("MultiHeadAttention heads", ValueError, ["d_model=10", "num_heads=3"], lambda: nn.MultiHeadAttention(10, 3))
case("Dropout ratio 1", ValueError, ["Dropout", "ratio", "1.0"], lambda: nn.Dropout(1.0))
case("dropout ratio 1.5", ValueError, ["dropout", "ratio", "1.5"], lambda: F.dropout(f32(3), 1.5))

# -- optimizers ----------------------------------------------------------------------------------
for label, value in [("-1", -1), ("nan", float("nan")), ("inf", float("inf")), ("'0.1'", "0.1"), ("None", None)]:
    case(f"SGD lr {label}", ValueError, ["SGD", "lr must be >= 0", "finite"], lambda v=value: optim.SGD(nn.Linear(2, 2), lr=v))
case("SGD weight_decay -1", ValueError, ["SGD", "weight_decay"], lambda: optim.SGD(nn.Linear(2, 2), lr=0.1, weight_decay=-1))
case("SGD max_grad_norm 0", ValueError, ["SGD", "max_grad_norm"], lambda: optim.SGD(nn.Linear(2, 2), lr=0.1, max_grad_norm=0))
case("Adam beta1 1.5", ValueError, ["Adam", "beta1", "1.5"], lambda: optim.Adam(nn.Linear(2, 2), beta1=1.5))
case("SGD empty", ValueError, ["SGD", "empty"], lambda: optim.SGD([], lr=0.1))
case("Adam beta1 str", ValueError, ["Adam", "beta1", "'0.9'"], lambda: optim.Adam(nn.Linear(2, 2), beta1="0.9"))
case("Adam eps inf", ValueError, ["Adam", "eps", "finite", "inf"], lambda: optim.Adam(nn.Linear(2, 2), eps=float("inf")))
case("AdaGrad eps str", ValueError, ["AdaGrad", "eps", "'1e-8'"], lambda: optim.AdaGrad(nn.Linear(2, 2), eps="1e-8"))
case("RMSprop decay str", ValueError, ["RMSprop", "decay", "'0.9'"], lambda: optim.RMSprop(nn.Linear(2, 2), decay="0.9"))
case("Momentum momentum str", ValueError, ["Momentum", "momentum", "'0.9'"],
     lambda: optim.Momentum(nn.Linear(2, 2), momentum="0.9"))
case("Momentum nesterov 'no'", TypeError, ["Momentum", "nesterov", "True or False", "'no'"],
     lambda: optim.Momentum(nn.Linear(2, 2), nesterov="no"))
case("clip_grad_norm str", ValueError, ["clip_grad_norm", "max_norm", "'1'"],
     lambda: optim.clip_grad_norm(nn.Linear(2, 2), "1"))
case("SGD non-parameter", TypeError, ["SGD", "int"], lambda: optim.SGD([3], lr=0.1))
case("SGD duplicate names", ValueError, ["SGD", "'w'", "unique"],
     lambda: optim.SGD([("w", nn.Parameter(f32(2))), ("w", nn.Parameter(f32(2)))], lr=0.1))

# -- losses --------------------------------------------------------------------------------------
case("cross-entropy label 5", ValueError, ["softmax_cross_entropy", "[0, 3)", "5"],
     lambda: F.softmax_cross_entropy(f32(2, 3), np.array([0, 5])))
case("cross-entropy label -1", ValueError, ["softmax_cross_entropy", "-1"],
     lambda: F.softmax_cross_entropy(f32(2, 3), np.array([0, -1])))
case("cross-entropy float labels", TypeError, ["softmax_cross_entropy", "integers", "float64"],
     lambda: F.softmax_cross_entropy(f32(2, 3), np.array([0.0, 1.0])))
case("mean_squared_error shapes", ValueError, ["mean_squared_error", "(2, 3)", "(3, 2)"],
     lambda: F.mean_squared_error(f32(2, 3), f32(3, 2)))

for name, fn in [("softmax_cross_entropy", lambda: F.softmax_cross_entropy(f32(0, 3), np.zeros(0, np.int64))),
                 ("sigmoid_cross_entropy", lambda: F.sigmoid_cross_entropy(f32(0, 2), f32(0, 2))),
                 ("mean_squared_error", lambda: F.mean_squared_error(f32(0, 2), f32(0, 2))),
                 ("huber_loss", lambda: F.huber_loss(f32(0), f32(0)))]:
    case(f"{name} empty batch", ValueError, [name, "empty batch", "undefined"], fn)

# -- convolution and pooling ---------------------------------------------------------------------
for kh, kw in [(0, 0), (0, 3), (2, 0)]:
    case(f"conv2d {kh}x{kw} kernel", ValueError, ["conv2d", f"{kh} x {kw}", "at least 1 x 1"],
         lambda kh=kh, kw=kw: F.conv2d(f32(1, 1, 4, 4), f32(2, 1, kh, kw)))
case("conv_transpose2d 0x0 kernel", ValueError, ["conv_transpose2d", "0 x 0"],
     lambda: F.conv_transpose2d(f32(1, 1, 4, 4), f32(1, 2, 0, 0)))
case("conv2d 3-D input", ValueError, ["conv2d", "4-D", "(1, 4, 4)"], lambda: F.conv2d(f32(1, 4, 4), f32(2, 1, 3, 3)))
case("max_pool2d kernel 0", ValueError, ["max_pool2d", "kernel_size", "0"], lambda: F.max_pool2d(f32(1, 1, 4, 4), 0))
case("max_pool2d 3-D input", ValueError, ["max_pool2d", "4-D"], lambda: F.max_pool2d(f32(1, 4, 4), 2))

# -- data ----------------------------------------------------------------------------------------
case("ArrayDataset lengths", ValueError, ["ArrayDataset", "4 samples", "3"], lambda: ArrayDataset(f32(4, 2), np.zeros(3), 2))
case("ArrayDataset str x", TypeError, ["ArrayDataset", "numbers", "<U1"], lambda: ArrayDataset(np.array([["a"]]), np.zeros(1), 2))
case("ArrayDataset split 1.5", ValueError, ["split ratio", "1.5"], lambda: ArrayDataset(f32(4, 2), np.zeros(4), 2, split_ratio=1.5))

# -- models and the trainer ----------------------------------------------------------------------
case("Model empty name", TypeError, ["Model", "non-empty string"], lambda: ta.Model("", nn.Linear(2, 2)))
case("Model block int", TypeError, ["Model 'm'", "Layer", "int"], lambda: ta.Model("m", 3))
case("backward non-scalar", RuntimeError, ["backward", "(3,)", "grad="], lambda: (var(3) * 2).backward())
case("backward grad shape", ValueError, ["backward", "(2,)", "(3,)"], lambda: (var(3) * 2).backward(f32(2)))


def _other_model_optimizer():
    model, other = nn.Linear(2, 2), nn.Linear(2, 2)
    Trainer(1, progress=None).init(ArrayDataset(f32(10, 2), np.zeros((10, 2)), 5), model, _Mse(), optim.SGD(other, lr=0.1))


class _Mse:
    def loss(self, target, prediction):
        return F.mean_squared_error(prediction, target)


case("Trainer.init foreign optimizer", ValueError, ["Trainer.init", "none of the model's parameters", "W, b"],
     _other_model_optimizer)
case("Trainer.init optimizer int", TypeError, ["Trainer.init", "optimizer of type int"],
     lambda: Trainer(1).init(ArrayDataset(f32(4, 2), np.zeros(4), 2), nn.Linear(2, 2), _Mse(), 3))
case("Trainer.train before init", ValueError, ["Trainer.train", "init"], lambda: Trainer(1).train())
# objects the Trainer calls only at the end of the first epoch: refused when they are passed in
case("Trainer evaluator str", TypeError, ["Trainer", "evaluator", "AccuracyEval()", "'accuracy'"],
     lambda: Trainer(1, evaluator="accuracy"))


def _train_shuffled(shuffle):
    model = nn.Linear(2, 2)
    trainer = Trainer(1, progress=None).init(ArrayDataset(f32(4, 2), np.zeros((4, 2)), 2), model, _Mse(),
                                             optim.SGD(model, lr=0.1))
    trainer.train(shuffle=shuffle)


case("Trainer.train shuffle 'no'", TypeError, ["Trainer.train", "shuffle", "True or False", "'no'"],
     lambda: _train_shuffled("no"))
case("Trainer checkpoint_path directory", IsADirectoryError, ["Trainer", "checkpoint_path", "directory", "checkpoint.npz"],
     lambda: Trainer(1, checkpoint_path="."))
case("Trainer checkpoint_path missing directory", FileNotFoundError, ["Trainer", "checkpoint_path", "does not exist"],
     lambda: Trainer(1, checkpoint_path="no/such/directory/checkpoint.npz"))
case("Trainer monitor int", TypeError, ["Trainer", "monitor", "int 3"], lambda: Trainer(1, monitor=3))
case("Trainer stream file name", TypeError, ["Trainer", "stream", "write()", "'log.txt'"],
     lambda: Trainer(1, stream="log.txt"))

# -- switches: a string is true to Python, None false; neither is what was meant ------------------
for label, value in [("'no'", "no"), ("'False'", "False"), ("0", 0), ("None", None), ("1.0", 1.0)]:
    case(f"Variable requires_grad {label}", TypeError, ["Variable", "requires_grad", "True or False", repr(value)],
         lambda v=value: ta.Variable(f32(2), requires_grad=v))
    case(f"F.sum keepdims {label}", TypeError, ["sum", "keepdims", "True or False", repr(value)],
         lambda v=value: F.sum(var(2, 3), axis=1, keepdims=v))
    case(f"Linear bias {label}", TypeError, ["Linear", "bias", "True or False"], lambda v=value: nn.Linear(2, 2, bias=v))
    case(f"Conv2d bias {label}", TypeError, ["Conv2d", "bias", "True or False"],
         lambda v=value: nn.Conv2d(1, 2, 3, bias=v))
    case(f"ArrayDataset drop_last {label}", TypeError, ["ArrayDataset", "drop_last", "True or False"],
         lambda v=value: ArrayDataset(f32(4, 2), np.zeros(4), 2, drop_last=v))
case("backward create_graph 'no'", TypeError, ["backward", "create_graph", "True or False", "'no'"],
     lambda: (var(2) * 2).sum().backward(create_graph="no"))
case("backward retain_grad 'yes'", TypeError, ["backward", "retain_grad", "'yes'"],
     lambda: (var(2) * 2).sum().backward(retain_grad="yes"))
case("Layer.train 'no'", TypeError, ["Linear.train", "mode", "True or False", "'no'"], lambda: nn.Linear(2, 2).train("no"))
case("F.mean axis True", TypeError, ["mean", "axis", "bool True"], lambda: F.mean(var(2, 3), axis=True))
case("F.max axis repeated", ValueError, ["max", "axis=(0, -2)", "twice", "(2, 3)"], lambda: F.max(var(2, 3), axis=(0, -2)))
case("F.logsumexp axis 5", ValueError, ["logsumexp", "axis 5", "out of range", "shape (2, 3)"],
     lambda: F.logsumexp(var(2, 3), axis=5))

# -- data: non-finite values, seeds ---------------------------------------------------------------
case("ArrayDataset NaN x", ValueError, ["ArrayDataset", "x holds 1 NaN of 8 values", "sample 2", "allow_non_finite"],
     lambda: ArrayDataset(np.array([[0, 1], [2, 3], [np.nan, 5], [6, 7]], np.float32), np.zeros(4), 2))
case("ArrayDataset shuffle seed str", ValueError, ["ArrayDataset.shuffle", "seed", "'a'"],
     lambda: ArrayDataset(f32(4, 2), np.zeros(4), 2).shuffle(seed="a"))
case("ArrayDataset split_seed -1", ValueError, ["ArrayDataset", "split_seed", "-1"],
     lambda: ArrayDataset(f32(4, 2), np.zeros(4), 2, split_seed=-1))

# -- model files ------------------------------------------------------------------------------------
case("Model.save int path", TypeError, ["Model.save", "path", "int 3"], lambda: ta.Model("m", nn.Linear(2, 2)).save(3))
case("Model.save empty path", ValueError, ["Model.save", "path is empty"], lambda: ta.Model("m", nn.Linear(2, 2)).save(""))
case("Model.save directory", IsADirectoryError, ["Model.save", "is a directory", "model.npz"],
     lambda: ta.Model("m", nn.Linear(2, 2)).save("."))
case("Model.load None path", TypeError, ["Model.load_weights", "path", "None"],
     lambda: ta.Model.load(None, nn.Linear(2, 2)))


@pytest.mark.parametrize("thunk,error,words", CASES)
def test_bad_input_is_refused_with_a_clear_message(thunk, error, words):
    with pytest.raises(error) as info:
        thunk()
    message = str(info.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"{type(info.value).__name__}: {message!r} lacks {missing}"


def test_the_table_is_large():
    assert len(CASES) >= 200


@pytest.mark.parametrize("build", [
    lambda: nn.Linear(np.int64(3), np.int32(2)),
    lambda: nn.Conv2d(np.int64(1), np.int64(4), np.int64(3), stride=np.int64(1), pad=(np.int64(1), 1)),
    lambda: nn.Embedding(np.int64(5), np.uint8(3)),
    lambda: nn.BatchNorm1d(np.int64(3)),
    lambda: nn.LayerNorm(np.int16(4)),
    lambda: nn.MultiHeadAttention(np.int64(8), np.int64(2)),
    lambda: nn.LSTM(np.int64(3), np.int64(4)),
], ids=["Linear", "Conv2d", "Embedding", "BatchNorm1d", "LayerNorm", "MultiHeadAttention", "LSTM"])
def test_numpy_integers_are_accepted_as_sizes_and_stored_as_ints(build):
    layer = build()
    sizes = {k: v for k, v in vars(layer).items()
             if k in ("in_features", "out_features", "in_channels", "out_channels", "num_embeddings",
                      "embedding_dim", "d_model", "num_heads", "hidden_size", "num_features", "normalized_shape")}
    assert sizes and all(type(v) is int for v in sizes.values()), sizes


def test_numpy_numbers_are_accepted_by_dropout_and_the_parallel_parts():
    from tinyai.parallel.aggregator import GradientAggregator
    assert nn.Dropout(np.float32(0.25)).ratio == 0.25
    assert F.dropout(f32(3), np.float32(0.0)).shape == (3,)
    GradientAggregator(np.int64(2))


def test_numpy_integers_are_accepted_by_the_trainer():
    trainer = Trainer(np.int64(3), accumulate_steps=np.int64(2), eval_every=np.int32(1), thread_count=np.int64(0),
                      progress=None)
    assert (trainer.max_epoch, trainer.accumulate_steps, trainer.eval_every) == (3, 2, 1)
    assert all(type(v) is int for v in (trainer.max_epoch, trainer.accumulate_steps, trainer.eval_every))


def test_numbers_and_number_arrays_still_combine_without_upcasting():
    x = var(3)
    assert (x + np.float64(2)).dtype == np.float32
    assert (x * 2.0).dtype == np.float32
    np.testing.assert_array_equal((x + [1, 2, 3]).data, [2, 4, 6])
    np.testing.assert_array_equal((True * x).data, x.data)
    assert ta.Variable([1e38]).dtype == np.float32
    assert ta.Variable(np.array([1e300])).dtype == np.float64   # an array keeps its dtype
