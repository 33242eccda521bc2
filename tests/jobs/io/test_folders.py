"""Whole folders between local disk and a Location: upload with a manifest last, replace, and a
local view of a folder (itself when local, a temporary download from S3)."""
from __future__ import annotations

import pytest

from pinrec.jobs.io import folders
from pinrec.jobs.io.folders import local_folder, replace_folder, upload_folder
from pinrec.jobs.io.lake import Location


def _tree(root, files: dict[str, bytes]):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture()
def where(any_location) -> Location:
    return any_location / "target"


def test_upload_writes_every_file_with_the_manifest_last(where, tmp_path, monkeypatch):
    src = _tree(tmp_path / "src", {"index.json": b"{}", "shard_001.faiss": b"a" * 10, "sub/b.bin": b"b"})
    order = []
    put = folders.put_file
    monkeypatch.setattr(folders, "put_file", lambda local, target: (order.append(target.name), put(local, target)))
    written = upload_folder(src, where, last=("index.json",))
    assert order == ["shard_001.faiss", "b.bin", "index.json"]
    assert [str(w) for w in written] == [f"{where}/shard_001.faiss", f"{where}/sub/b.bin", f"{where}/index.json"]
    assert {f.path[len(where.path) + 1:]: f.read_bytes() for f in where.files_below()} == \
        {"index.json": b"{}", "shard_001.faiss": b"a" * 10, "sub/b.bin": b"b"}


def test_replace_removes_the_old_files_and_local_folder_reads_them_back(where, tmp_path):
    upload_folder(_tree(tmp_path / "old", {"index.json": b"old", "shard_000.faiss": b"old", "stale.bin": b"x"}), where)
    replace_folder(_tree(tmp_path / "new", {"index.json": b"new", "shard_000.faiss": b"new"}), where,
                   last=("index.json",))
    with local_folder(where) as local:
        assert sorted(p.name for p in local.iterdir()) == ["index.json", "shard_000.faiss"]
        assert (local / "index.json").read_bytes() == b"new"
        assert (local / "shard_000.faiss").read_bytes() == b"new"
        downloaded = local
    assert downloaded.exists() == (not where.is_s3)  # a download is removed on exit; a local folder stays


def test_missing_folders_and_manifests_are_named(where, tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder to upload at"):
        upload_folder(tmp_path / "absent", where)
    with pytest.raises(FileNotFoundError, match=r"has no \['index.json'\] to upload last"):
        upload_folder(_tree(tmp_path / "src", {"a": b"1"}), where, last=("index.json",))
    if where.is_s3:
        with pytest.raises(FileNotFoundError, match=f"nothing under {where}"), local_folder(where / "nothing"):
            pass
