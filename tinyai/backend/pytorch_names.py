"""PyTorch's names that tinyai spells differently, for helpful error messages.

A PyTorch user's first guesses mostly work in tinyai: ``model.parameters()``,
``optimizer.zero_grad()``, ``nn.Sequential``, ``losses.CrossEntropyLoss`` and
a few more are aliases of tinyai's own names (see docs/from-pytorch.md). For
the other PyTorch names, an ``AttributeError`` says what tinyai calls the
thing instead of only that it is missing. The table lives here, at the
bottom of the layers, because every layer's classes and modules use it;
it holds only text.
"""
from __future__ import annotations

from typing import Any

#: PyTorch attribute name -> tinyai equivalent, by the kind of object it was asked of.
ATTRIBUTES: dict[str, dict[str, str]] = {
    "Variable": {
        "grad_fn": "x.creator (the Function that made x; None for a leaf)",
        "is_leaf": "x.creator is None",
        "size": "x.shape",
        "dim": "x.ndim",
        "view": "x.reshape(...)",
        "unsqueeze": "F.expand_dims(x, axis)",
        "squeeze": "F.squeeze(x, axis)",
        "permute": "x.transpose(*axes)",
        "requires_grad_": "x.requires_grad = True",
        "zero_": "x.clear_grad() (for the gradient)",
        "retain_grad": "x.backward(retain_grad=True) on the output",
        "cuda": "x.to_gpu()",
        "cpu": "x.to_cpu()",
        "tolist": "x.data.tolist()",
        "exp": "F.exp(x)",
        "log": "F.log(x)",
        "relu": "F.relu(x)",
        "mm": "x @ y or F.matmul(x, y)",
        "clone": "ta.Variable(x.data.copy())",
    },
    "Layer": {
        "weight": "W (a Linear's W is (in, out): PyTorch's weight transposed)",
        "bias": "b",
        "modules": "named_layers() (pairs of name and layer)",
        "named_modules": "named_layers()",
        "cuda": "to_gpu()",
        "add_module": "an attribute assignment: self.name = layer",
        "register_parameter": "an attribute assignment: self.name = Parameter(array)",
        "requires_grad_": "p.requires_grad = False for each p in params()",
        "apply": "a loop over named_layers()",
        "half": "tinyai.backend.set_default_dtype before building the model",
        "double": "tinyai.backend.set_default_dtype(np.float64) before building the model",
    },
    "Optimizer": {
        "param_groups": "the lr attribute and params()",
        "add_param_group": "one optimizer per group of parameters",
    },
    "DataSet": {
        "dataset": "the data set itself (it batches: no DataLoader needed)",
        "sampler": "shuffle() (a new order each epoch)",
    },
}
ATTRIBUTES["Model"] = ATTRIBUTES["Layer"]

#: PyTorch module attribute -> tinyai equivalent, by tinyai module.
MODULE_ATTRIBUTES: dict[str, dict[str, str]] = {
    "tinyai": {
        "tensor": "ta.Variable(data)",
        "Tensor": "ta.Variable",
        "from_numpy": "ta.Variable(array)",
        "randn": "ta.Variable(tinyai.backend.get_rng().standard_normal(shape))",
        "zeros": "ta.Variable(np.zeros(shape))",
        "ones": "ta.Variable(np.ones(shape))",
        "cuda": "ta.is_gpu_available() and model.to_gpu()",
        "device": "model.to('gpu') / model.to('cpu')",
        "save": "model.save(path) (a Model) or tinyai.training.save_checkpoint",
        "load": "Model.load(path, block) or tinyai.training.load_checkpoint",
        "set_grad_enabled": "ta.no_grad() / ta.enable_grad()",
        "inference_mode": "ta.no_grad() together with ta.test_mode()",
        "matmul": "tinyai.functions.matmul",
        "cat": "tinyai.functions.concat",
        "stack": "tinyai.functions.stack",
        "exp": "tinyai.functions.exp",
        "sum": "tinyai.functions.sum",
        "relu": "tinyai.functions.relu",
        "utils": "tinyai.data (DataSet, ArrayDataset) for data loading",
    },
    "tinyai.nn": {
        "Module": "Layer (holds Parameters) or Block (holds layers)",
        "ModuleList": "a Block with the layers as attributes, or SequentialBlock",
        "ModuleDict": "a Block with the layers as attributes",
        "functional": "tinyai.functions (import tinyai.functions as F)",
        "MSELoss": "tinyai.losses.MeanSquaredLoss (also tinyai.losses.MSELoss)",
        "CrossEntropyLoss": "tinyai.losses.SoftmaxCrossEntropy (also tinyai.losses.CrossEntropyLoss)",
        "BCEWithLogitsLoss": "tinyai.losses.SigmoidCrossEntropy",
        "HuberLoss": "tinyai.losses.Huber",
        "RNN": "SimpleRNN",
        "Identity": "a Layer whose forward returns its input",
    },
    "tinyai.functions": {
        "cross_entropy": "softmax_cross_entropy(x, t)",
        "mse_loss": "mean_squared_error(x, t)",
        "binary_cross_entropy_with_logits": "sigmoid_cross_entropy(x, t)",
        "huber_loss": "huber_loss",
        "cat": "concat",
        "unsqueeze": "expand_dims",
        "permute": "transpose",
        "view": "reshape",
    },
    "tinyai.optim": {
        "lr_scheduler": "the schedules in tinyai.optim: StepLR, CosineAnnealing, LinearWarmup, warmup_cosine",
        "Adagrad": "AdaGrad",
        "RMSProp": "RMSprop",
    },
    "tinyai.losses": {
        "NLLLoss": "SoftmaxCrossEntropy (takes the raw scores; no log_softmax first)",
        "BCEWithLogitsLoss": "SigmoidCrossEntropy",
        "HuberLoss": "Huber",
        "SmoothL1Loss": "Huber",
    },
}


def attribute_error(obj: Any, kind: str, name: str) -> AttributeError:
    """The AttributeError for ``obj.name``: Python's usual message, plus tinyai's
    name for it when ``name`` is a PyTorch habit."""
    message = f"{type(obj).__name__!r} object has no attribute {name!r}"
    hint = ATTRIBUTES.get(kind, {}).get(name)
    if hint is not None:
        message += f" (that is PyTorch's name; in tinyai: {hint})"
    return AttributeError(message, name=name, obj=obj)


def module_attribute_error(module: str, name: str) -> AttributeError:
    """The AttributeError for ``module.name``, with tinyai's name for a PyTorch habit."""
    message = f"module {module!r} has no attribute {name!r}"
    hint = MODULE_ATTRIBUTES.get(module, {}).get(name)
    if hint is not None:
        message += f" (that is PyTorch's name; in tinyai: {hint})"
    return AttributeError(message, name=name)
