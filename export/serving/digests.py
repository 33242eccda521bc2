"""Sizes and sha256 digests of byte streams and local files, read in 1 MiB chunks (what a manifest
records and a download checks). Standard library only."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

__all__ = ["CHUNK", "file_digest", "read_chunks", "sha256_stream"]

#: bytes read at a time: a bundle's files are read whole without holding them in memory
CHUNK = 1 << 20


def read_chunks(f) -> Iterator[bytes]:
    """The bytes of the binary file object ``f``, :data:`CHUNK` at a time, until its end."""
    while chunk := f.read(CHUNK):
        yield chunk


def sha256_stream(chunks: Iterator[bytes]) -> tuple[int, str]:
    """(size, sha256 hex) of a stream of byte chunks."""
    h, n = hashlib.sha256(), 0
    for chunk in chunks:
        h.update(chunk)
        n += len(chunk)
    return n, h.hexdigest()


def file_digest(path: str) -> tuple[int, str]:
    """(size, sha256 hex) of a local file, read in 1 MiB chunks."""
    with open(path, "rb") as f:
        return sha256_stream(read_chunks(f))
