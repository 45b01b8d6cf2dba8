"""Model: delegation to its block, atomic .npz save/load, architecture mismatches, corrupt files, summary."""
import os
import pickle

import numpy as np
import pytest

import tinyai
import tinyai.functions as F
from tinyai.nn import Block, Layer, Linear, Parameter
from tinyai.training import Model
from tinyai.training.model import read_weights


class MLP(Block):
    def __init__(self, sizes=(3, 5, 2)):
        super().__init__()
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.add(f"fc{i + 1}", Linear(a, b))

    def forward(self, x):
        layers = list(self.children())
        for layer in layers[:-1]:
            x = F.tanh(layer(x))
        return layers[-1](x)


class Scaler(Layer):
    """A layer with a buffer, to check buffers travel with the weights."""

    def __init__(self, n):
        super().__init__()
        self.scale = Parameter(np.full(n, 2.0, dtype=np.float32))
        self.register_buffer("count", np.zeros(1, dtype=np.float32))

    def forward(self, x):
        return x * self.scale


class WithScaler(Block):
    def __init__(self):
        super().__init__()
        self.body = MLP()
        self.head = Scaler(2)

    def forward(self, x):
        return self.head(self.body(x))


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for _, p in model.named_params():
        p.data = rng.normal(size=p.shape).astype(p.dtype)
    return model


def test_model_passes_through_to_its_block(rng):
    block = MLP()
    model = Model("mlp", block)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(model(x).data, block(x).data)
    np.testing.assert_array_equal(model.forward(x).data, block(x).data)
    assert [n for n, _ in model.named_params()] == ["fc1.W", "fc1.b", "fc2.W", "fc2.b"]
    assert list(model.params())[0] is block.fc1.W
    assert model.num_params() == 3 * 5 + 5 + 5 * 2 + 2
    assert model.eval() is model and not block.training and not block.fc1.training
    assert model.train() is model and block.fc2.training
    F.sum(model(x)).backward()
    model.clear_grads()
    assert all(p.grad is None for p in block.params())
    with pytest.raises(TypeError, match="Model 'm': block must be a tinyai.nn Layer"):
        Model("m", object())


def test_save_and_load_round_trip_with_buffers(tmp_path):
    path = tmp_path / "model.npz"
    source = Model("scaled", randomize(WithScaler(), 1))
    source.block.head.count[...] = 7.0
    source.save(path)
    target = Model("other", randomize(WithScaler(), 2))
    target.load_weights(path)
    for (name, a), (_, b) in zip(source.named_params(), target.named_params()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
        assert b.data.dtype == np.float32
    np.testing.assert_array_equal(target.block.head.count, [7.0])
    # The loaded model owns its arrays.
    assert target.block.body.fc1.W.data is not source.block.body.fc1.W.data


def test_load_classmethod_takes_the_saved_name(tmp_path):
    path = tmp_path / "weights.npz"
    Model("regressor", randomize(MLP(), 3)).save(path)
    loaded = Model.load(path, MLP())
    assert loaded.name == "regressor"
    np.testing.assert_array_equal(loaded.block.fc2.b.data, read_weights(path)["fc2.b"])
    assert Model.load(str(path), MLP(), name="renamed").name == "renamed"


def test_file_is_plain_npz_readable_without_pickle(tmp_path):
    path = tmp_path / "m.npz"
    Model("m", MLP()).save(path)
    with np.load(path, allow_pickle=False) as f:
        assert set(f.files) == {"fc1.W", "fc1.b", "fc2.W", "fc2.b", "__tinyai__.format", "__tinyai__.name"}
        assert str(f["__tinyai__.name"]) == "m"


def test_save_keeps_the_path_exactly_and_replaces_atomically(tmp_path, monkeypatch):
    path = tmp_path / "weights.bin"  # no .npz suffix is added
    model = Model("m", randomize(MLP(), 4))
    model.save(path)
    assert os.listdir(tmp_path) == ["weights.bin"]
    good = path.read_bytes()

    def failing_savez(file, **arrays):
        file.write(b"half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    randomize(model.block, 5)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == good, "a failed save must leave the previous file intact"
    assert os.listdir(tmp_path) == ["weights.bin"], "the temporary file must be cleaned up"


def test_loading_another_architecture_lists_names_and_shapes(tmp_path):
    path = tmp_path / "small.npz"
    Model("small", MLP((3, 5, 2))).save(path)
    target = Model("big", MLP((3, 8, 2, 4)))
    before = target.block.fc1.W.data.copy()
    with pytest.raises(ValueError) as info:
        target.load_weights(path)
    message = str(info.value)
    assert str(path) in message and "'small'" in message and "'big'" in message
    assert "fc1.W (expected (3, 8), got (3, 5))" in message
    assert "fc2.W (expected (8, 2), got (5, 2))" in message
    assert "missing: fc3.W (2, 4), fc3.b (4,)" in message
    np.testing.assert_array_equal(target.block.fc1.W.data, before)  # nothing was half-loaded

    renamed = tmp_path / "renamed.npz"
    np.savez(renamed, **{"layer1.W": np.zeros((3, 5), np.float32)})
    with pytest.raises(ValueError, match=r"unexpected: layer1.W \(3, 5\)"):
        Model("m", MLP()).load_weights(renamed)


def test_unreadable_files_give_clear_errors_naming_the_path(tmp_path):
    model = Model("m", MLP())
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="no such file: .*nope.npz"):
        model.load_weights(missing)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive at all" * 10)
    with pytest.raises(ValueError, match=r"cannot read .*garbage.npz.* as an .npz weights file"):
        model.load_weights(garbage)

    good = tmp_path / "good.npz"
    model.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"cannot read .*truncated.npz"):
        model.load_weights(truncated)

    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match=r"single.npy.* holds a single .npy array"):
        model.load_weights(single)

    with pytest.raises(IsADirectoryError, match="cannot open"):
        model.load_weights(tmp_path)


def test_pickled_objects_in_a_weights_file_are_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"fc1.W": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match=r"cannot read .*evil.npz.*allow_pickle"):
        Model("m", MLP()).load_weights(path)


def test_lazy_model_loads_by_materializing_from_the_file(tmp_path, rng):
    class LazyNet(Block):
        def __init__(self):
            super().__init__()
            self.fc = Linear(None, 2)

        def forward(self, x):
            return self.fc(x)

    trained = Model("lazy", LazyNet())
    x = rng.normal(size=(3, 4)).astype(np.float32)
    y = trained(x).data
    trained.save(tmp_path / "lazy.npz")
    fresh = Model.load(tmp_path / "lazy.npz", LazyNet())
    np.testing.assert_array_equal(fresh(x).data, y)


def test_summary_lists_layers_shapes_and_counts(rng):
    model = Model("classifier", WithScaler())
    text = model.summary()
    assert isinstance(text, str)
    assert text.splitlines()[0] == "Model: classifier"
    lines = {line.split()[0]: line for line in text.splitlines()[1:] if line.strip()}
    assert lines["fc1"].split()[-1] == str(3 * 5 + 5)      # W (3,5) + b (5,)
    assert lines["fc2"].split()[-1] == str(5 * 2 + 2)
    assert lines["head"].split()[-1] == "2"
    assert lines["body"].split()[-1] == "0"               # a block's own params only; children below it
    assert "Total params: 34" in text                     # 20 + 12 + 2
    # No sample, but fc1 = Linear(3, 5) fixes the input: shapes with the batch as N.
    assert "(N, 5)" in lines["fc1"] and "(N, 2)" in lines["head"]
    assert "Input shape: (N, 3)" in text

    info = model.info(rng.normal(size=(7, 3)).astype(np.float32))
    shapes = {row.name: row.output_shape for row in info.layers}
    assert shapes == {"body": (7, 2), "body.fc1": (7, 5), "body.fc2": (7, 2), "head": (7, 2)}
    assert info.total_params == sum(row.params for row in info.layers) == model.num_params()
    assert "(7, 5)" in model.summary((7, 3))
    # The recording hooks are gone afterwards, and the model still pickles.
    assert "forward" not in model.block.body.fc1.__dict__
    pickle.dumps(model)


def test_top_level_parameters_get_their_own_summary_row():
    class Biased(Block):
        def __init__(self):
            super().__init__()
            self.fc = Linear(2, 3)
            self.offset = Parameter(np.zeros(3, dtype=np.float32))

        def forward(self, x):
            return self.fc(x) + self.offset

    info = Model("b", Biased()).info()
    assert [(row.name, row.params) for row in info.layers] == [("Biased", 3), ("fc", 9)]
    assert info.total_params == 12


def test_save_and_load_on_another_backend(tmp_path, xp, to_xp):
    source = Model("m", randomize(MLP(), 6))
    for _, p in source.named_params():
        p.data = to_xp(p.data)
    source.save(tmp_path / "m.npz")  # device arrays are copied to the host for the file
    target = Model("m", randomize(MLP(), 7))
    for _, p in target.named_params():
        p.data = to_xp(p.data)
    target.load_weights(tmp_path / "m.npz")
    for (name, a), (_, b) in zip(source.named_params(), target.named_params()):
        assert tinyai.get_array_module(b.data) is xp
        np.testing.assert_array_equal(tinyai.to_cpu(a.data), tinyai.to_cpu(b.data), err_msg=name)


def test_summary_without_sample_infers_conv_shapes_or_says_a_sample_is_needed():
    from tinyai.nn import Conv2d, Flatten, SequentialBlock, SimpleConvNet

    info = Model("cnn", SimpleConvNet(image_size=12)).info()
    shapes = {row.name: row.output_shape for row in info.layers}
    # 3x3 convolutions with padding 1 keep 12x12; each 2x2 pooling halves it: 12 -> 6 -> 3.
    assert shapes["conv1"] == (None, 16, 12, 12) and shapes["pool1"] == (None, 16, 6, 6)
    assert shapes["pool2"] == (None, 32, 3, 3) and shapes["flatten"] == (None, 32 * 3 * 3)
    assert shapes["fc"] == (None, 10) and info.shape_note is None
    assert "(N, 32, 3, 3)" in str(info)

    unknown = Model("conv", SequentialBlock(Conv2d(1, 4, 3), Flatten()))
    text = unknown.summary()
    assert "?" not in text and "Output shape " not in text.splitlines()[2]     # no shape column
    assert "Output shapes need a sample: the first layer (Conv2d) does not fix the input's size" in text
    assert "(N, 4, 6, 6)" in unknown.summary(sample=(2, 1, 8, 8)).replace("(2,", "(N,")
