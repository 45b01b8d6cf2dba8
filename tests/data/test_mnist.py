"""MNIST: the bundled real test set, a full-set directory, and error reporting."""
import gzip
import hashlib
import importlib.resources

import numpy as np
import pytest

from tinyai.data import IdxFormatError, MnistDataSet

# From the shared data README (computed on the files as distributed).
SHIPPED_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b",
    "t10k-labels-idx1-ubyte.gz": "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c",
}
CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def shipped(name):
    return importlib.resources.files("tinyai.data").joinpath("mnist", name)


@pytest.fixture(scope="module")
def bundled():
    return MnistDataSet().prepare()


def test_shipped_files_are_the_real_ones():
    for name, digest in SHIPPED_SHA256.items():
        assert hashlib.sha256(shipped(name).read_bytes()).hexdigest() == digest
    readme = shipped("README.md").read_text(encoding="utf-8")
    for credit in ("Yann LeCun", "Corinna Cortes", "Christopher J. C. Burges", "CC BY-SA 3.0"):
        assert credit in readme


def test_bundled_set_has_10000_digits(bundled):
    assert bundled.x.shape == (10000, 784) and bundled.x.dtype == np.float32
    assert bundled.y.shape == (10000,) and bundled.y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(bundled.y, minlength=10), CLASS_COUNTS)
    # The first test digits of MNIST are well known: 7, 2, 1, 0, 4, 1, 4, 9, 5, 9.
    np.testing.assert_array_equal(bundled.y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert bundled.x.min() == 0.0 and bundled.x.max() == 1.0
    assert len(bundled) == 100  # batch_size 100


def test_bundled_pixels_are_the_raw_bytes_over_255(bundled):
    raw = gzip.decompress(shipped("t10k-images-idx3-ubyte.gz").read_bytes())
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(10000, 784)
    np.testing.assert_allclose(bundled.x[:50], pixels[:50] / 255.0, atol=1e-7)


def test_bundled_split_is_8000_2000(bundled):
    train, test = bundled.get_train_dataset(), bundled.get_test_dataset()
    assert (train.num_samples, test.num_samples) == (8000, 2000)
    counts = np.bincount(train.y, minlength=10) + np.bincount(test.y, minlength=10)
    np.testing.assert_array_equal(counts, CLASS_COUNTS)
    # Seeded: a fresh data set gives the same test part.
    np.testing.assert_array_equal(MnistDataSet().get_test_dataset().y, test.y)


def test_unflattened_shape(bundled):
    images = MnistDataSet(flatten=False, batch_size=64)
    assert images.x.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(images.x.reshape(10000, 784), bundled.x)
    assert next(iter(images)).x.shape == (64, 1, 28, 28)


def write_mnist_dir(directory, write_idx, n_train=6, n_test=4, gz=("train-images-idx3-ubyte",)):
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(exist_ok=True)
    for name, array in arrays.items():
        write_idx(directory / (name + ".gz" if name in gz else name), array, gz=name in gz)
    return arrays


def test_full_directory_uses_the_official_split(tmp_path, write_idx):
    arrays = write_mnist_dir(tmp_path / "mnist", write_idx)
    data = MnistDataSet(root=tmp_path / "mnist", batch_size=4, flatten=False)
    train, test = data.get_train_dataset(), data.get_test_dataset()
    assert data.num_samples == 10 and data.num_train == 6
    np.testing.assert_allclose(train.x[:, 0], arrays["train-images-idx3-ubyte"] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(train.y, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_allclose(test.x[:, 0], arrays["t10k-images-idx3-ubyte"] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(test.y, arrays["t10k-labels-idx1-ubyte"])
    assert (len(train), len(test)) == (2, 1)


def test_directory_with_only_the_test_files_is_split(tmp_path, write_idx):
    directory = tmp_path / "t10k"
    directory.mkdir()
    rng = np.random.default_rng(2)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)), gz=True)
    write_idx(directory / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 20))
    data = MnistDataSet(root=directory)
    assert data.num_train is None
    assert (data.get_train_dataset().num_samples, data.get_test_dataset().num_samples) == (16, 4)


def test_missing_directory_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="no MNIST directory at") as info:
        MnistDataSet(root=missing).prepare()
    assert str(missing) in str(info.value)


def test_incomplete_directory_names_the_missing_files(tmp_path, write_idx):
    write_mnist_dir(tmp_path / "m", write_idx)
    (tmp_path / "m" / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks train-labels-idx1-ubyte\(\.gz\)") as info:
        MnistDataSet(root=tmp_path / "m").prepare()
    assert str(tmp_path / "m") in str(info.value)


def test_truncated_file_in_directory_is_refused(tmp_path, write_idx):
    write_mnist_dir(tmp_path / "m", write_idx)
    path = tmp_path / "m" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IdxFormatError, match="truncated") as info:
        MnistDataSet(root=tmp_path / "m").prepare()
    assert str(path) in str(info.value)


def test_mismatched_or_malformed_mnist_files(tmp_path, write_idx):
    write_mnist_dir(tmp_path / "m", write_idx)
    labels = tmp_path / "m" / "t10k-labels-idx1-ubyte"
    write_idx(labels, np.arange(3))
    with pytest.raises(IdxFormatError, match="holds 4 images but .* holds 3 labels"):
        MnistDataSet(root=tmp_path / "m").prepare()
    write_idx(labels, [1, 2, 10, 3])
    with pytest.raises(IdxFormatError, match="label 10 is not a digit 0-9"):
        MnistDataSet(root=tmp_path / "m").prepare()
    write_idx(labels, [1, 2, 3, 4])
    write_idx(tmp_path / "m" / "t10k-images-idx3-ubyte", np.zeros((4, 27, 28)))
    with pytest.raises(IdxFormatError, match="images are 27 x 28, expected 28 x 28"):
        MnistDataSet(root=tmp_path / "m").prepare()
    # Labels where images belong: the dimension count gives it away.
    write_idx(tmp_path / "m" / "t10k-images-idx3-ubyte", [1, 2, 3, 4])
    with pytest.raises(IdxFormatError, match=r"header declares 1 dimension\(s\)"):
        MnistDataSet(root=tmp_path / "m").prepare()
