"""A strict reader for the IDX format of MNIST, raw or gzip-compressed.

An IDX file is a big-endian header followed by the data in row-major order:

    bytes 0-1   zero
    byte  2     type code (0x08 = unsigned byte, the only one MNIST uses)
    byte  3     number of dimensions, D >= 1
    4 * D       the size of each dimension, unsigned 32-bit big-endian
    then        prod(sizes) data bytes, nothing more

So the images file starts 0x00000803 (D = 3: count, rows, columns) and the
labels file 0x00000801 (D = 1: count). The reader checks every one of these
facts and refuses a file that breaks any of them with an ``IdxFormatError``
naming the file and the fault: a truncated download must fail loudly, never
come back as a smaller data set.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

__all__ = ["IdxFormatError", "read_idx", "IDX_UNSIGNED_BYTE"]

#: The IDX type code of unsigned bytes (numpy uint8).
IDX_UNSIGNED_BYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(ValueError):
    """An IDX file is truncated, corrupt, or not the IDX file that was expected."""


def _read_bytes(path: str) -> bytes:
    """The file's content, decompressed when it starts with the gzip magic number."""
    with open(path, "rb") as f:
        content = f.read()
    if content[:2] != _GZIP_MAGIC:
        return content
    try:
        return gzip.decompress(content)
    except (EOFError, OSError, zlib.error) as exc:
        # EOFError: the stream stops early (a truncated .gz); BadGzipFile (an
        # OSError) and zlib.error: the compressed bytes are damaged.
        raise IdxFormatError(f"read_idx: {path}: corrupt or truncated gzip data ({exc})") from exc


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes into a uint8 array of the declared shape.

    Args:
        path: the file; gzip compression is recognised by its content, not its name.
        expected_ndim: when given, the number of dimensions the header must
            declare (3 for MNIST images, 1 for labels).

    Returns:
        A writable uint8 array of shape (size_0, ..., size_{D-1}).

    Raises:
        FileNotFoundError: the file does not exist.
        IdxFormatError: bad gzip data, bad magic number, a type code other than
            0x08, an unexpected number of dimensions, or a data section whose
            length differs from the product of the sizes in the header.
    """
    path = os.fspath(path)
    content = _read_bytes(path)
    if len(content) < 4:
        raise IdxFormatError(f"read_idx: {path}: {len(content)} bytes is too short for an IDX "
                             "header (a 4-byte magic number comes first)")
    magic = int.from_bytes(content[:4], "big")
    zeros, type_code, ndim = content[:2], content[2], content[3]
    if zeros != b"\x00\x00":
        raise IdxFormatError(f"read_idx: {path}: bad magic number 0x{magic:08x}; an IDX file "
                             "starts with two zero bytes, the type code and the dimension count")
    if type_code != IDX_UNSIGNED_BYTE:
        raise IdxFormatError(f"read_idx: {path}: type code 0x{type_code:02x} (magic 0x{magic:08x}) "
                             f"is not supported; expected 0x{IDX_UNSIGNED_BYTE:02x} (unsigned byte)")
    if ndim == 0:
        raise IdxFormatError(f"read_idx: {path}: magic 0x{magic:08x} declares 0 dimensions")
    if expected_ndim is not None and ndim != expected_ndim:
        raise IdxFormatError(f"read_idx: {path}: header declares {ndim} dimension(s) "
                             f"(magic 0x{magic:08x}) but {expected_ndim} were expected")
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise IdxFormatError(f"read_idx: {path}: truncated header; {ndim} dimension(s) need "
                             f"{header_size} header bytes but the file holds {len(content)}")
    shape = struct.unpack(f">{ndim}I", content[4:header_size])
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(content) - header_size
    if actual != expected:
        dims = " x ".join(str(s) for s in shape)
        fault = "truncated" if actual < expected else "trailing bytes"
        raise IdxFormatError(f"read_idx: {path}: {fault}; the header declares {dims} = {expected} "
                             f"data bytes but {actual} follow it")
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape).copy()
