"""Durable, atomic writes to a local folder: what a local :class:`~pinrec.export.serving.bundle_store.Store`
rests on.

* :func:`replace_read_only` — a new file renamed over the old, left read-only: a file is never
  rewritten in place, so a reader that memory-mapped the old one keeps its bytes;
* :func:`link_if_absent` — a temporary file hard-linked into place (``os.link`` fails when the name
  exists), so the object appears complete or not at all;
* :func:`swap_locked` — compare-and-swap of a small file: an exclusive ``flock`` on ``<path>.lock``
  around read-compare-``os.replace`` (the kernel releases the lock when a killed writer dies;
  readers never need it since ``os.replace`` is atomic). Only a swap writes ``<path>.tmp-*`` beside
  the file, under that lock, so the next swap removes what a killed one left.

Every write is synced (the file, its folder and any folder it created) before it returns: a bundle's
manifest, written after its files, must never outlive them in a crash. Standard library only.
"""
from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator

__all__ = ["fsync_dir", "link_if_absent", "makedirs_durable", "replace_read_only", "swap_locked", "write_tmp"]


def replace_read_only(path: str, chunks: Iterator[bytes]) -> None:
    """Write a new file and rename it over ``path``: the old inode, if any, is never touched. Durable
    when it returns (file, its folder and any folder it created synced): a bundle's manifest, written
    after its files, must never outlive them in a crash."""
    makedirs_durable(os.path.dirname(path))
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.writelines(chunks)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)
        fsync_dir(os.path.dirname(path))
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def link_if_absent(path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists; True when this call created it."""
    makedirs_durable(os.path.dirname(path))
    tmp = write_tmp(path, data)
    try:
        os.link(tmp, path)
        fsync_dir(os.path.dirname(path))
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def swap_locked(path: str, data: bytes | None, token: str | None) -> bool:
    """Under the file's lock: if its sha256 is ``token`` (None: absent), write ``data``
    (None: delete it); False when it is not."""
    import fcntl

    folder, base = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    with open(path + ".lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        for leftover in os.listdir(folder):  # only swaps write these, under this lock: a dead one's
            if leftover.startswith(base + ".tmp-"):
                try:
                    os.unlink(os.path.join(folder, leftover))
                except FileNotFoundError:
                    pass
        try:
            with open(path, "rb") as f:
                current = hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:
            current = None
        if current != token:
            return False
        if data is None:
            os.unlink(path)
        else:
            os.replace(write_tmp(path, data), path)
        fsync_dir(os.path.dirname(path))
        return True  # the lock is released when the file closes (or the process dies)


def write_tmp(path: str, data: bytes) -> str:
    """A new synced file ``<path>.tmp-<uuid>`` holding ``data``; returns its path."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def makedirs_durable(folder: str) -> None:
    """``os.makedirs`` whose new folders' entries are synced into their parents."""
    missing, d = [], folder
    while d and not os.path.isdir(d):
        missing.append(d)
        d = os.path.dirname(d)
    os.makedirs(folder, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(os.path.dirname(created))


def fsync_dir(path: str) -> None:
    """Sync a folder's entries (a rename or a new name in it survives a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
