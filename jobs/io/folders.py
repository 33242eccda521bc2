"""Whole folders between local disk and a :class:`~pinrec.jobs.io.lake.Location`.

The artifacts (the FAISS index, the ONNX ranker) are written and read by libraries that only
know local files. When ``storage.artifacts`` is on S3 they are built in a temporary local
folder and uploaded with :func:`replace_folder` (a manifest such as ``index.json`` last, so a
reader that finds it finds every file it names), and read back through :func:`local_folder`,
which downloads them to a temporary folder. Local locations are used in place.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .lake import Location

_CHUNK = 8 << 20


def put_file(local: str | Path, target: Location) -> None:
    """Copy the local file ``local`` to ``target`` (on S3 one streamed upload, locally a copy
    renamed into place), without reading it into memory at once."""
    if not target.is_s3:
        os.makedirs(os.path.dirname(target.path), exist_ok=True)
        tmp = f"{target.path}.tmp-{os.getpid()}"
        shutil.copyfile(local, tmp)
        os.replace(tmp, target.path)
        return
    with open(local, "rb") as src, target.fs.open(target.path, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


def upload_folder(local: str | Path, target: Location, last: tuple[str, ...] = ()) -> list[Location]:
    """Copy every file below ``local`` to the same relative path below ``target``; the relative
    names in ``last`` are copied after all the others, in that order. Returns what was written."""
    root = Path(local)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder to upload at {root}")
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    missing = [n for n in last if n not in names]
    if missing:
        raise FileNotFoundError(f"{root} has no {missing} to upload last")
    written = []
    for name in [n for n in names if n not in last] + list(last):
        put_file(root / name, target / name)
        written.append(target / name)
    return written


def replace_folder(local: str | Path, target: Location, last: tuple[str, ...] = ()) -> list[Location]:
    """Make ``target`` hold exactly the files of ``local``: the old ``last`` files go first (a
    reader stops finding the old manifest), then the rest of the old folder, then
    :func:`upload_folder` writes the new files with ``last`` at the end."""
    if not Path(local).is_dir():
        raise FileNotFoundError(f"no folder to upload at {local}")
    for name in last:
        (target / name).delete()
    target.delete()
    return upload_folder(local, target, last)


@contextlib.contextmanager
def local_folder(where: Location) -> Iterator[Path]:
    """``where`` as a local folder: itself when local; on S3 a temporary copy of every file below
    it, removed on exit. Raises ``FileNotFoundError`` naming ``where`` when it holds no file."""
    if not where.is_s3:
        yield Path(where.path)
        return
    files = where.files_below()
    if not files:
        raise FileNotFoundError(f"nothing under {where}")
    root = where.path.rstrip("/") + "/"
    with tempfile.TemporaryDirectory(prefix="pinrec-artifacts-") as tmp:
        for f in files:
            dest = Path(tmp, f.path[len(root):])
            dest.parent.mkdir(parents=True, exist_ok=True)
            with f.fs.open(f.path, "rb") as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        yield Path(tmp)
