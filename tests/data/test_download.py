"""Downloads for real, against an HTTP server on 127.0.0.1: success, bad checksum, cut-off body."""
import gzip
import hashlib
import os
import struct

import numpy as np
import pytest

from tinyai.data import ChecksumMismatchError, DownloadError, MnistDataSet, download_file
from tinyai.data.mnist import MNIST_FILES

TIMEOUT = 2.0  # seconds per connect/read; every request in these tests is bounded by it


def idx_gz(array):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.tobytes())


@pytest.fixture
def mnist_files():
    """The four standard .gz files of a tiny MNIST (5 training, 3 test images)."""
    rng = np.random.default_rng(3)
    arrays = {
        "train_images": rng.integers(0, 256, (5, 28, 28)),
        "train_labels": [0, 1, 2, 3, 4],
        "test_images": rng.integers(0, 256, (3, 28, 28)),
        "test_labels": [9, 8, 7],
    }
    return {MNIST_FILES[role] + ".gz": idx_gz(array) for role, array in arrays.items()}


def digests(files):
    return {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}


def serve_all(server, files, prefix="mnist/"):
    for name, body in files.items():
        server.serve(prefix + name, body)
    return server.url + prefix


def test_download_success_and_cache_reuse(tmp_path, http_server, mnist_files):
    base_url = serve_all(http_server, mnist_files)
    cache = tmp_path / "cache"
    data = MnistDataSet(download=True, cache_dir=cache, base_url=base_url,
                        checksums=digests(mnist_files), timeout=TIMEOUT, batch_size=2)
    assert (data.get_train_dataset().num_samples, data.get_test_dataset().num_samples) == (5, 3)
    np.testing.assert_array_equal(data.get_test_dataset().y, [9, 8, 7])
    assert sorted(os.listdir(cache)) == sorted(mnist_files)  # no temporary files left
    for name, body in mnist_files.items():
        assert (cache / name).read_bytes() == body
    assert len(http_server.requests) == 4
    # A second data set finds verified files in the cache and fetches nothing.
    MnistDataSet(download=True, cache_dir=cache, base_url=base_url,
                 checksums=digests(mnist_files), timeout=TIMEOUT).prepare()
    assert len(http_server.requests) == 4


def test_corrupt_cached_file_is_fetched_again(tmp_path, http_server, mnist_files):
    base_url = serve_all(http_server, mnist_files)
    cache = tmp_path / "cache"
    cache.mkdir()
    damaged = cache / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(b"not what was expected")
    data = MnistDataSet(download=True, cache_dir=cache, base_url=base_url,
                        checksums=digests(mnist_files), timeout=TIMEOUT).prepare()
    assert damaged.read_bytes() == mnist_files[damaged.name]
    assert data.num_samples == 8


def test_checksum_mismatch_keeps_nothing(tmp_path, http_server, mnist_files):
    base_url = serve_all(http_server, mnist_files)
    cache = tmp_path / "cache"
    expected = digests(mnist_files)
    expected["train-labels-idx1-ubyte.gz"] = "0" * 64
    with pytest.raises(ChecksumMismatchError) as info:
        MnistDataSet(download=True, cache_dir=cache, base_url=base_url, checksums=expected,
                     timeout=TIMEOUT).prepare()
    message = str(info.value)
    assert "checksum mismatch" in message and "train-labels-idx1-ubyte.gz" in message
    assert "0" * 64 in message
    assert hashlib.sha256(mnist_files["train-labels-idx1-ubyte.gz"]).hexdigest() in message
    # Files verified before the bad one stay; the bad one and its temporary file are gone.
    assert sorted(os.listdir(cache)) == ["train-images-idx3-ubyte.gz"]


def test_interrupted_download_leaves_no_partial_file(tmp_path, http_server, mnist_files):
    body = mnist_files["train-images-idx3-ubyte.gz"]
    http_server.serve("cut/train-images-idx3-ubyte.gz", body, mode="cut")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=rf"was interrupted: the server announced {len(body)} "
                                            rf"bytes but the connection closed after {len(body) // 2}"):
        MnistDataSet(download=True, cache_dir=cache, base_url=http_server.url + "cut/",
                     checksums=digests(mnist_files), timeout=TIMEOUT).prepare()
    assert os.listdir(cache) == []


def test_stalled_download_times_out_and_leaves_nothing(tmp_path, http_server):
    http_server.serve("slow.bin", b"x" * 4096, mode="stall")
    destination = tmp_path / "cache" / "slow.bin"
    with pytest.raises(DownloadError, match="fetching .*slow.bin failed after [0-9]+ bytes.*timed out"):
        download_file(http_server.url + "slow.bin", destination, timeout=0.3)
    assert os.listdir(tmp_path / "cache") == []


def test_download_file_direct(tmp_path, http_server):
    body = bytes(range(256)) * 300
    http_server.serve("blob", body)
    destination = tmp_path / "deep" / "dir" / "blob"
    result = download_file(http_server.url + "blob", destination,
                           sha256=hashlib.sha256(body).hexdigest().upper(), timeout=TIMEOUT)
    assert result == str(destination) and destination.read_bytes() == body
    with pytest.raises(DownloadError, match="404"):
        download_file(http_server.url + "missing", tmp_path / "missing", timeout=TIMEOUT)
    assert not (tmp_path / "missing").exists()


def test_download_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="only http and https URLs are fetched, got 'ftp://x/y'"):
        download_file("ftp://x/y", tmp_path / "y")
    with pytest.raises(ValueError, match="expected a SHA-256 digest of 64 hex digits"):
        download_file("http://127.0.0.1:9/y", tmp_path / "y", sha256="abc")
    with pytest.raises(ValueError, match="pass cache_dir instead of root"):
        MnistDataSet(download=True, root=tmp_path)
    assert os.listdir(tmp_path) == []
