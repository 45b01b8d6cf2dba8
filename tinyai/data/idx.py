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

It reads as a stream, header first: the sizes are checked (and bounded by
``max_bytes``) before any memory is allocated, then exactly the declared
number of bytes is read, plus one to detect trailing data. A hostile file,
a small gzip that would expand to gigabytes, is refused after a few
kilobytes of work.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import struct
import zlib
from typing import BinaryIO

import numpy as np

__all__ = ["IdxFormatError", "read_idx", "IDX_UNSIGNED_BYTE", "MAX_IDX_BYTES"]

#: The IDX type code of unsigned bytes (numpy uint8).
IDX_UNSIGNED_BYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
#: The largest data section ``read_idx`` accepts unless told otherwise (2 GiB).
MAX_IDX_BYTES = 2 << 30


class IdxFormatError(ValueError):
    """An IDX file is truncated, corrupt, or not the IDX file that was expected."""


def _open(path: str, files: contextlib.ExitStack) -> tuple[BinaryIO, bool]:
    """A binary stream of the file's IDX bytes (decompressing gzip, recognised by its magic
    number) and whether it is compressed. Nothing is decompressed until it is read.

    Both the file and the gzip reader over it are entered into ``files``:
    closing a ``GzipFile`` made from an open file does not close that file,
    which was left to the garbage collector (a ResourceWarning) before.
    """
    raw = files.enter_context(open(path, "rb"))
    if raw.read(2) != _GZIP_MAGIC:
        raw.seek(0)
        return raw, False
    raw.seek(0)
    return files.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")), True


def _read_up_to(stream: BinaryIO, buffer: memoryview, path: str) -> int:
    """Fill ``buffer`` from ``stream`` as far as it goes; the number of bytes read."""
    filled = 0
    try:
        while filled < len(buffer):
            n = stream.readinto(buffer[filled:])
            if not n:
                break
            filled += n
    except (EOFError, OSError, zlib.error) as exc:
        # EOFError: the stream stops early (a truncated .gz); BadGzipFile (an
        # OSError) and zlib.error: the compressed bytes are damaged.
        raise IdxFormatError(f"read_idx: {path}: corrupt or truncated gzip data ({exc})") from exc
    return filled


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None, *,
             max_bytes: int = MAX_IDX_BYTES, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes into a uint8 array of the declared shape.

    The header is read and checked first; only then is memory allocated,
    exactly as much as the header declares, and no more than that plus one
    byte is ever read or decompressed. So a hostile file (a small gzip that
    expands to gigabytes, or a header that declares a huge shape) costs
    neither memory nor time.

    Args:
        path: the file; gzip compression is recognised by its content, not its name.
        expected_ndim: when given, the number of dimensions the header must
            declare (3 for MNIST images, 1 for labels).
        max_bytes: the largest data section accepted (default ``MAX_IDX_BYTES``,
            2 GiB; MNIST's largest file holds 47 MB). Raise it to read larger files.
        sha256: when given, the SHA-256 hex digest the (decompressed) IDX
            bytes must have, header included.

    Returns:
        A writable uint8 array of shape (size_0, ..., size_{D-1}).

    Raises:
        FileNotFoundError: the file does not exist.
        IdxFormatError: bad gzip data, bad magic number, a type code other than
            0x08, an unexpected number of dimensions, a declared size beyond
            ``max_bytes``, a data section whose length differs from the
            product of the sizes in the header, or a digest that differs from
            ``sha256``.
    """
    path = os.fspath(path)
    with contextlib.ExitStack() as files:
        stream, compressed = _open(path, files)
        head = bytearray(4)
        got = _read_up_to(stream, memoryview(head), path)
        if got < 4:
            raise IdxFormatError(f"read_idx: {path}: {got} bytes is too short for an IDX "
                                 "header (a 4-byte magic number comes first)")
        magic = int.from_bytes(head, "big")
        zeros, type_code, ndim = bytes(head[:2]), head[2], head[3]
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
        sizes = bytearray(4 * ndim)
        got = _read_up_to(stream, memoryview(sizes), path)
        if got < len(sizes):
            raise IdxFormatError(f"read_idx: {path}: truncated header; {ndim} dimension(s) need "
                                 f"{4 + 4 * ndim} header bytes but the file holds {4 + got}")
        shape = struct.unpack(f">{ndim}I", sizes)
        expected = math.prod(shape)
        dims = " x ".join(str(s) for s in shape)
        if expected > max_bytes:
            raise IdxFormatError(f"read_idx: {path}: the header declares {dims} = {expected} data bytes, "
                                 f"more than max_bytes={max_bytes}; pass a larger max_bytes to read it")
        data = np.empty(expected, dtype=np.uint8)
        got = _read_up_to(stream, memoryview(data), path)
        if got < expected:
            raise IdxFormatError(f"read_idx: {path}: truncated; the header declares {dims} = {expected} "
                                 f"data bytes but {got} follow it")
        if _read_up_to(stream, memoryview(bytearray(1)), path):
            if compressed:  # not decompressed further: the rest could be gigabytes
                follow = f"more than {expected}"
            else:
                follow = str(os.fstat(stream.fileno()).st_size - 4 - 4 * ndim)
            raise IdxFormatError(f"read_idx: {path}: trailing bytes; the header declares {dims} = "
                                 f"{expected} data bytes but {follow} follow it")
    if sha256 is not None:
        digest = hashlib.sha256(head + sizes)
        digest.update(data)
        if digest.hexdigest() != sha256.lower():
            raise IdxFormatError(f"read_idx: {path}: the SHA-256 of its IDX bytes is {digest.hexdigest()}, "
                                 f"expected {sha256.lower()}: not the file it should be (damaged or replaced)")
    return data.reshape(shape)
