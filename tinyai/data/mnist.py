"""MNIST, the 28 x 28 handwritten digits, from the bundled test set or the full files.

Three sources, in the order tried:

* ``download=True``: the four standard ``.gz`` files are fetched from
  ``base_url`` into ``cache_dir`` (written atomically, and checked against
  the SHA-256 digests in ``checksums``: of the compressed file where known,
  and of the decompressed IDX bytes for all four) and used as below.
* ``root=DIR``: a directory holding the four standard files, raw or gzipped
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally with
  ``.gz``): the official 60,000 training and 10,000 test images. A directory
  with only the two ``t10k`` files is treated like the bundled set.
* neither: the real MNIST test set (10,000 images) shipped inside tinyai, in
  ``tinyai/data/mnist/`` (see the README there for credits and licence),
  split by a seeded permutation into 8,000 training and 2,000 test images
  (``split_ratio=0.8``, ``split_seed=0``; not stratified, so class counts
  differ slightly between the parts).

Samples: pixels scaled from 0..255 to [0, 1] in the default float dtype;
x has shape (N, 784) with ``flatten=True`` (the default) or (N, 1, 28, 28)
(batch, channels, height, width) otherwise; y holds int64 labels 0..9.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J. C. Burges, under the
Creative Commons Attribution-Share Alike 3.0 licence.
"""
from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
from typing import Mapping

import numpy as np

from tinyai.backend import get_default_dtype
from tinyai.data.dataset import DEFAULT_SPLIT_RATIO, DEFAULT_SPLIT_SEED, ArrayDataset, DataSet
from tinyai.data.download import download_file, sha256_file
from tinyai.data.idx import IdxFormatError, read_idx

__all__ = ["MnistDataSet", "MNIST_FILES", "MNIST_SHA256", "DEFAULT_MNIST_URL", "default_cache_dir"]

logger = logging.getLogger(__name__)

#: The standard file names (without ``.gz``), by role.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: SHA-256 digests that files must have, by file name. A name ending in
#: ``.gz`` is the digest of the compressed file (checked as it downloads):
#: known only for the test-set files shipped with tinyai. A name without
#: ``.gz`` is the digest of the decompressed IDX bytes, header included
#: (checked as the file is read, so any gzip of the same data passes): all
#: four files, the t10k ones verified against the bundled copy. Their sizes:
#: train images 47,040,016 bytes, train labels 60,008, t10k images
#: 7,840,016, t10k labels 10,008.
MNIST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b",
    "t10k-labels-idx1-ubyte.gz": "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Where ``download=True`` fetches from unless told otherwise: a public mirror
#: of the original files (the original site often refuses scripted downloads).
DEFAULT_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

_IMAGE_SIZE = (28, 28)
_NUM_CLASSES = 10


def default_cache_dir() -> str:
    """``$TINYAI_CACHE_DIR/mnist``, else ``~/.cache/tinyai/mnist``."""
    base = os.environ.get("TINYAI_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tinyai")
    return os.path.join(base, "mnist")


def _find_file(directory: str, name: str) -> str | None:
    """``directory/name`` or ``directory/name.gz``, whichever exists (raw first)."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _idx_digest(path: str, checksums: Mapping[str, str]) -> str | None:
    """The expected digest of the decompressed IDX bytes of ``path``, if ``checksums`` has one."""
    name = os.path.basename(path)
    return checksums.get(name[:-3] if name.endswith(".gz") else name)


def _read_verified(path: str, ndim: int, checksums: Mapping[str, str], discard_on_mismatch: bool) -> np.ndarray:
    """``read_idx`` with the IDX digest check; a cached download that fails it is removed."""
    expected = _idx_digest(path, checksums)
    try:
        return read_idx(path, expected_ndim=ndim, sha256=expected)
    except IdxFormatError as error:
        if discard_on_mismatch and expected is not None and "SHA-256" in str(error):
            with contextlib.suppress(OSError):
                os.remove(path)
            raise IdxFormatError(f"{error}; the cached file was removed, so the next run downloads "
                                 "it again") from None
        raise


def _read_pair(images_path: str, labels_path: str, checksums: Mapping[str, str] | None = None,
               discard_on_mismatch: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) as uint8, checked against each other (and
    against the IDX digests in ``checksums``, where it has them)."""
    checksums = checksums or {}
    images = _read_verified(images_path, 3, checksums, discard_on_mismatch)
    labels = _read_verified(labels_path, 1, checksums, discard_on_mismatch)
    if images.shape[1:] != _IMAGE_SIZE:
        raise IdxFormatError(f"MnistDataSet: {images_path}: images are "
                             f"{images.shape[1]} x {images.shape[2]}, expected 28 x 28")
    if len(images) != len(labels):
        raise IdxFormatError(f"MnistDataSet: {images_path} holds {len(images)} images but "
                             f"{labels_path} holds {len(labels)} labels")
    if len(labels) and labels.max() >= _NUM_CLASSES:
        raise IdxFormatError(f"MnistDataSet: {labels_path}: label {int(labels.max())} is not a digit 0-9")
    return images, labels


class MnistDataSet(DataSet):
    """The MNIST digits (see the module docstring for the sources and the split).

    Args:
        batch_size: samples per batch (default 100).
        root: a directory with the standard MNIST files; ``None`` uses the
            bundled test set.
        flatten: x of shape (N, 784) if true, else (N, 1, 28, 28).
        download: fetch the four ``.gz`` files into ``cache_dir`` first
            (files already there with a matching digest are kept).
        cache_dir: where downloads go (default ``default_cache_dir()``).
        base_url: the URL the file names are appended to.
        checksums: file name -> expected SHA-256 hex digest (default
            ``MNIST_SHA256``): ``name.gz`` entries are checked on the
            compressed download, plain ``name`` entries on the decompressed
            IDX bytes of downloaded files (and of a ``root`` directory's files
            when ``checksums`` is given). A file without an entry is not
            checked by digest (the IDX reader still checks its structure).
        timeout: seconds any single network connect or read may wait.
        drop_last, split_ratio, split_seed: as for ``DataSet``; the ratio and
            seed apply only to a test-set-only source, since the full files
            come with their own split (the first 60,000 train, the last 10,000 test).
    """

    def __init__(self, batch_size: int = 100, *, root: str | os.PathLike | None = None,
                 flatten: bool = True, download: bool = False,
                 cache_dir: str | os.PathLike | None = None, base_url: str = DEFAULT_MNIST_URL,
                 checksums: Mapping[str, str] | None = None, timeout: float = 30.0,
                 drop_last: bool = False, split_ratio: float = DEFAULT_SPLIT_RATIO,
                 split_seed: int | None = DEFAULT_SPLIT_SEED) -> None:
        super().__init__(batch_size, drop_last=drop_last, split_ratio=split_ratio, split_seed=split_seed)
        if download and root is not None:
            raise ValueError("MnistDataSet: download=True stores the files in cache_dir; "
                             "pass cache_dir instead of root")
        self.root = os.fspath(root) if root is not None else None
        self.flatten = bool(flatten)
        self.download = bool(download)
        self.cache_dir = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
        self.base_url = base_url
        self.checksums = dict(MNIST_SHA256 if checksums is None else checksums)
        # A root directory of one's own is checked only against digests one gave.
        self._verify_root = checksums is not None
        self.timeout = timeout
        #: Number of leading samples that form the fixed training part, or
        #: None when the split is drawn (known after ``prepare()``).
        self.num_train: int | None = None
        #: The files the samples were read from (known after ``prepare()``).
        self.files: list[str] = []

    # -- sources ---------------------------------------------------------------
    def _download(self) -> str:
        """Make sure the four .gz files are in the cache; returns the cache directory."""
        for name in MNIST_FILES.values():
            filename = name + ".gz"
            destination = os.path.join(self.cache_dir, filename)
            expected = self.checksums.get(filename)
            if os.path.isfile(destination):
                if expected is None or sha256_file(destination) == expected.lower():
                    continue
                logger.warning("MnistDataSet: cached %s has the wrong SHA-256; downloading it again",
                               destination)
            url = self.base_url.rstrip("/") + "/" + filename
            download_file(url, destination, sha256=expected, timeout=self.timeout,
                          checked_elsewhere=self.checksums.get(name) is not None)
        return self.cache_dir

    def _load_directory(self, directory: str, downloaded: bool = False) -> tuple[np.ndarray, np.ndarray]:
        checksums = self.checksums if downloaded or self._verify_root else {}
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"MnistDataSet: no MNIST directory at {os.path.abspath(directory)!r}")
        found = {role: _find_file(directory, name) for role, name in MNIST_FILES.items()}
        if all(found.values()):
            train_x, train_y = _read_pair(found["train_images"], found["train_labels"], checksums, downloaded)
            test_x, test_y = _read_pair(found["test_images"], found["test_labels"], checksums, downloaded)
            self.num_train = len(train_x)
            self.files = list(found.values())
            return np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
        if found["test_images"] and found["test_labels"] and not (found["train_images"] or found["train_labels"]):
            self.files = [found["test_images"], found["test_labels"]]
            return _read_pair(*self.files, checksums, downloaded)
        missing = ", ".join(name + "(.gz)" for role, name in MNIST_FILES.items() if not found[role])
        raise FileNotFoundError(f"MnistDataSet: {os.path.abspath(directory)!r} lacks {missing}; "
                                "it needs all four standard MNIST files (or only the two t10k files)")

    def _load_bundled(self) -> tuple[np.ndarray, np.ndarray]:
        package_dir = importlib.resources.files("tinyai.data").joinpath("mnist")
        with contextlib.ExitStack() as stack:
            images, labels = (
                str(stack.enter_context(importlib.resources.as_file(
                    package_dir.joinpath(MNIST_FILES[role] + ".gz"))))
                for role in ("test_images", "test_labels"))
            self.files = [images, labels]
            return _read_pair(images, labels, MNIST_SHA256)

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        if self.download:
            images, labels = self._load_directory(self._download(), downloaded=True)
        elif self.root is not None:
            images, labels = self._load_directory(self.root)
        else:
            images, labels = self._load_bundled()
        x = images.astype(get_default_dtype())
        x /= 255.0
        shape = (len(x), 28 * 28) if self.flatten else (len(x), 1, 28, 28)
        return x.reshape(shape), labels

    def _make_splits(self) -> tuple[ArrayDataset, ArrayDataset]:
        self.prepare()
        if self.num_train is None:
            return super()._make_splits()
        # The official split; slices keep both parts views of the same arrays.
        return self._subset(slice(0, self.num_train)), self._subset(slice(self.num_train, None))
