"""The non-finite check and all-or-nothing loading on the device path (the CuPy stand-in plays the GPU)."""
import numpy as np
import pytest

import tinyai as ta
from tinyai import optim
from tinyai.testing.standin import StandInArray, standin_as_gpu
from tinyai.training import Model, NonFiniteGradientError, Trainer

from tests.parallel.models import MeanSquared, TwoLayerNet
from tests.training.nan_helpers import Whole, poisoned_arrays

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def test_the_gradient_check_names_the_fault_on_a_device_model():
    with standin_as_gpu():
        ta.seed(5)
        model = TwoLayerNet()
        trainer = Trainer(1, progress=None, device="gpu")
        trainer.init(Whole(*poisoned_arrays()), model, MeanSquared(), optim.SGD(model, lr=0.1))
        assert isinstance(model.fc1.W.data, StandInArray)
        with pytest.raises(NonFiniteGradientError, match=r"batch 3/4.*fc1\.W.*input x holds 1 inf"):
            trainer.train(shuffle=False)


def test_a_refused_load_leaves_a_device_model_unchanged(tmp_path):
    with standin_as_gpu():
        ta.seed(1)
        source = Model("m", TwoLayerNet())
        path = tmp_path / "w.npz"
        source.save(path)
        arrays = dict(np.load(path))
        arrays["fc2.b"] = np.array([1e300, 0.0, 0.0])
        np.savez(path, **arrays)
        ta.seed(2)
        target = Model("m", TwoLayerNet()).to_gpu()
        before = {k: v.get() for k, v in target.state_dict().items()}
        with pytest.raises(ValueError, match=r"fc2\.b holds 1e\+300"):
            target.load_weights(path)
        for name, value in target.state_dict().items():
            assert isinstance(value, StandInArray)
            np.testing.assert_array_equal(value.get(), before[name])
        source_path = tmp_path / "good.npz"
        source.save(source_path)
        target.load_weights(source_path)
        assert isinstance(target.block.fc1.W.data, StandInArray)
        np.testing.assert_array_equal(target.block.fc1.W.data.get(), np.asarray(source.block.fc1.W.data))
