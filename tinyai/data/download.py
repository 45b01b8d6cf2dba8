"""Fetch a file over HTTP(S) into a cache, all or nothing, with a SHA-256 check.

The bytes go to a temporary file in the destination's directory while their
digest is computed; only a complete download whose length matches the
server's Content-Length and whose digest matches the expected one is moved
into place, by ``os.replace`` (atomic on one file system). Any failure (a
timeout, a connection closed mid-body, a wrong checksum) deletes the
temporary file, so the cache never holds a partial or unverified file under
its final name.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.parse
import urllib.request

from tinyai.backend.files import publish

__all__ = ["DownloadError", "ChecksumMismatchError", "download_file", "sha256_file"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16


class DownloadError(OSError):
    """A download failed; nothing was written under the destination name."""


class ChecksumMismatchError(DownloadError):
    """The downloaded bytes do not have the expected SHA-256 digest."""


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 digest of a file, as 64 lower-case hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, destination: str | os.PathLike, sha256: str | None = None,
                  timeout: float = 30.0, *, checked_elsewhere: bool = False) -> str:
    """Download ``url`` to ``destination`` atomically; returns the destination path.

    Args:
        url: an ``http://`` or ``https://`` address.
        destination: the final path; its directory is created if missing.
        sha256: the expected hex digest; ``None`` skips the check (a warning
            is logged, since the file then is only as good as the server).
        timeout: seconds any single connect or read may wait.
        checked_elsewhere: the caller verifies the content itself (MNIST
            checks the digest of the decompressed bytes), so a missing
            ``sha256`` is not worth a warning.

    Raises:
        ValueError: the URL is not http(s) or the digest is not 64 hex digits.
        ChecksumMismatchError: the bytes arrived but their digest is wrong.
        DownloadError: the server refused, the connection failed or timed out,
            or it closed before Content-Length bytes arrived.
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"download_file: only http and https URLs are fetched, got {url!r}")
    if sha256 is not None:
        sha256 = sha256.lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"download_file: expected a SHA-256 digest of 64 hex digits for {url}, "
                             f"got {sha256!r}")
    elif not checked_elsewhere:
        logger.warning("download_file: no SHA-256 digest known for %s; it is not verified", url)
    destination = os.fspath(destination)
    directory = os.path.dirname(os.path.abspath(destination))
    os.makedirs(directory, exist_ok=True)

    # Same directory as the destination, so os.replace never crosses file systems.
    fd, temp_path = tempfile.mkstemp(dir=directory, prefix=os.path.basename(destination) + ".",
                                     suffix=".part")
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    expected_length = int(length) if length is not None else None
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
                        received += len(chunk)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # OSError: refused connections, HTTP errors (urllib.error.URLError),
                # timeouts and resets; HTTPException: malformed or cut-off responses.
                raise DownloadError(f"download_file: fetching {url} failed after {received} bytes: "
                                    f"{exc!r}") from exc
            if expected_length is not None and received != expected_length:
                raise DownloadError(f"download_file: {url} was interrupted: the server announced "
                                    f"{expected_length} bytes but the connection closed after {received}")
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256:
            raise ChecksumMismatchError(f"download_file: checksum mismatch for {url}: expected SHA-256 "
                                        f"{sha256}, got {actual} ({received} bytes); the file was discarded")
        publish(temp_path, destination)
    except BaseException:
        # Also on KeyboardInterrupt: the half-written temporary file must not stay behind.
        try:
            os.remove(temp_path)
        except FileNotFoundError:
            pass
        raise
    logger.info("downloaded %s (%d bytes) to %s", url, received, destination)
    return destination
