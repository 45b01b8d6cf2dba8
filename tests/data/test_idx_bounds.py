"""read_idx reads the header first and never decompresses more than it declares plus one byte."""
import gzip
import hashlib
import importlib.resources
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from tinyai.data import IdxFormatError, MnistDataSet, read_idx
from tinyai.data.mnist import MNIST_FILES, MNIST_SHA256


def gzip_bomb(path, header, zero_megabytes):
    """A valid gzip of ``header`` followed by that many MiB of zeros (about 1 KiB per MiB on disk)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)   # wbits 31: the gzip container
    chunk = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(compressor.compress(header))
        for _ in range(zero_megabytes):
            f.write(compressor.compress(chunk))
        f.write(compressor.flush())
    return path


def peak_bytes_while(fn):
    tracemalloc.start()
    try:
        with pytest.raises(IdxFormatError) as info:
            fn()
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_after_a_small_header_costs_no_memory(tmp_path):
    header = struct.pack(">I", 0x803) + struct.pack(">3I", 10, 28, 28)   # 7,840 data bytes declared
    path = gzip_bomb(tmp_path / "bomb.gz", header, zero_megabytes=64)
    assert path.stat().st_size < 1 << 20
    peak, message = peak_bytes_while(lambda: read_idx(path, expected_ndim=3))
    assert "trailing bytes" in message and "10 x 28 x 28 = 7840" in message and "more than 7840" in message
    assert peak < 1 << 20, f"read_idx peaked at {peak / 2**20:.1f} MiB on a 64 MiB bomb"


@pytest.mark.parametrize("compress", [False, True])
def test_a_huge_declared_shape_is_refused_before_anything_is_allocated(tmp_path, compress):
    content = struct.pack(">I", 0x803) + struct.pack(">3I", 60000, 60000, 60000) + bytes(100)
    path = tmp_path / "huge"
    path.write_bytes(gzip.compress(content) if compress else content)
    peak, message = peak_bytes_while(lambda: read_idx(path))
    assert "60000 x 60000 x 60000 = 216000000000000 data bytes" in message
    assert f"more than max_bytes={2 << 30}" in message and str(path) in message
    assert peak < 1 << 20


def test_max_bytes_is_documented_and_overridable(tmp_path):
    data = np.arange(60, dtype=np.uint8).reshape(5, 12)
    path = tmp_path / "small"
    path.write_bytes(struct.pack(">I", 0x802) + struct.pack(">2I", 5, 12) + data.tobytes())
    with pytest.raises(IdxFormatError, match="5 x 12 = 60 data bytes, more than max_bytes=59"):
        read_idx(path, max_bytes=59)
    np.testing.assert_array_equal(read_idx(path, max_bytes=60), data)


def bundled(name):
    return importlib.resources.files("tinyai.data").joinpath("mnist", name + ".gz")


@pytest.mark.parametrize("role", ["test_images", "test_labels"])
def test_the_t10k_idx_digests_match_the_bundled_copy_in_any_gzip(tmp_path, role):
    name = MNIST_FILES[role]
    raw = gzip.decompress(bundled(name).read_bytes())
    assert hashlib.sha256(raw).hexdigest() == MNIST_SHA256[name]           # the digests, checked here
    assert len(raw) == {"test_images": 7_840_016, "test_labels": 10_008}[role]
    recompressed = tmp_path / (name + ".gz")
    recompressed.write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
    assert recompressed.read_bytes() != bundled(name).read_bytes()
    array = read_idx(recompressed, sha256=MNIST_SHA256[name])
    assert array.size == len(raw) - (16 if role == "test_images" else 8)


def test_the_training_digests_fit_the_sizes_the_format_gives():
    # 60,000 images of 28 x 28 after a 16-byte header; 60,000 labels after an 8-byte one.
    assert 16 + 60000 * 28 * 28 == 47_040_016 and 8 + 60000 == 60_008
    for name in MNIST_FILES.values():
        digest = MNIST_SHA256[name]
        assert len(digest) == 64 and int(digest, 16) >= 0


def test_a_changed_byte_fails_the_digest(tmp_path):
    name = MNIST_FILES["test_labels"]
    raw = bytearray(gzip.decompress(bundled(name).read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    path = tmp_path / name
    path.write_bytes(bytes(raw))
    with pytest.raises(IdxFormatError, match=rf"SHA-256 of its IDX bytes is [0-9a-f]{{64}}, expected "
                                             rf"{MNIST_SHA256[name]}"):
        read_idx(path, sha256=MNIST_SHA256[name])
    images = MNIST_FILES["test_images"] + ".gz"
    (tmp_path / images).write_bytes(bundled(MNIST_FILES["test_images"]).read_bytes())
    MnistDataSet(root=tmp_path).prepare()         # one's own directory: checked only when asked
    with pytest.raises(IdxFormatError, match="t10k-labels-idx1-ubyte.*SHA-256"):
        MnistDataSet(root=tmp_path, checksums=MNIST_SHA256).prepare()


def test_downloaded_training_files_are_checked_by_default_and_a_bad_one_is_discarded(tmp_path, http_server):
    # Real t10k files, and training files that are well-formed IDX but not MNIST's.
    rng = np.random.default_rng(0)
    fake = {"train_images": rng.integers(0, 256, (4, 28, 28)), "train_labels": np.arange(4)}
    for role, array in fake.items():
        array = np.asarray(array, np.uint8)
        header = struct.pack(">I", 0x800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
        http_server.serve("m/" + MNIST_FILES[role] + ".gz", gzip.compress(header + array.tobytes()))
    for role in ("test_images", "test_labels"):
        http_server.serve("m/" + MNIST_FILES[role] + ".gz", bundled(MNIST_FILES[role]).read_bytes())
    cache = tmp_path / "cache"
    with pytest.raises(IdxFormatError) as info:
        MnistDataSet(download=True, cache_dir=cache, base_url=http_server.url + "m/", timeout=5).prepare()
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and MNIST_SHA256["train-images-idx3-ubyte"] in message
    assert "removed" in message
    assert not (cache / "train-images-idx3-ubyte.gz").exists()
