"""Layer 4: data sets, mini-batches and the built-in data (TinyAI's ml.dataset).

``DataSet`` is the base (batching, shuffling, a seeded train/test split),
``ArrayDataset`` wraps arrays already in memory, ``Batch`` is one mini-batch.
Built in: ``SpiralDataSet`` (3-class toy classification), ``SinDataSet`` and
``CosDataSet`` (next-value sequence regression) and ``MnistDataSet`` (the real
MNIST test set ships with tinyai; the full set is read from a directory or
downloaded).
"""
from tinyai.data.dataset import ArrayDataset, Batch, DataSet
from tinyai.data.download import ChecksumMismatchError, DownloadError, download_file, sha256_file
from tinyai.data.idx import IdxFormatError, read_idx
from tinyai.data.mnist import MNIST_FILES, MNIST_SHA256, MnistDataSet
from tinyai.data.synthetic import CosDataSet, SinDataSet, SpiralDataSet

__all__ = [
    "DataSet", "ArrayDataset", "Batch",
    "SpiralDataSet", "SinDataSet", "CosDataSet", "MnistDataSet",
    "read_idx", "IdxFormatError", "download_file", "sha256_file", "DownloadError",
    "ChecksumMismatchError", "MNIST_FILES", "MNIST_SHA256",
]
