"""The store: channel listing, pointer reads and swaps, in-place safety, identity; local and S3; and the
facade: every public name of ``pinrec.export.serving.store`` as the object its own module defines."""
import datetime as dt
import os
import subprocess
import sys
import uuid

import pytest

from pinrec.export.serving import (
    bundle_layout,
    bundle_store,
    digests,
    local_writes,
    s3_conditional,
    s3_options,
)
from pinrec.export.serving import store as store_module
from pinrec.export.serving.store import (
    S3Options,
    Store,
    list_channels,
    read_channel,
    read_channel_for_update,
)
from pinrec.schemas.manifest import ChannelPointer, ManifestError, is_channel_name
from tests.support.s3 import BUCKET

SHA = "ab" * 32
T = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)


class Killed(BaseException):
    """Stands for the process dying mid-swap."""


def _pointer(name="homefeed", channel="prod", version="v1") -> bytes:
    return ChannelPointer(name, channel, version, SHA, T, "publish").to_json().encode()


def test_list_channels_lists_exactly_the_valid_channel_names(store):
    for channel in ("prod", "canary-2", "exp.1"):
        store.swap(f"channels/homefeed/{channel}", _pointer(channel=channel), None)
    for junk in ("prod.lock", "exp.tmp-1", "prod.tmp-0123", "canary.lock", ".hidden"):  # what the store leaves
        store.put_bytes(f"channels/homefeed/{junk}", b"x")
    listed = list_channels(store, "homefeed")
    assert listed == ["canary-2", "exp.1", "prod"]
    names = store.list_dir("channels/homefeed")
    assert [n for n in names if is_channel_name(n)] == listed  # one rule for both


def test_a_pointer_copied_from_another_channel_or_bundle_is_refused(store):
    store.put_bytes("channels/homefeed/canary", _pointer(channel="prod"))
    store.put_bytes("channels/homefeed/prod", _pointer(name="other"))
    with pytest.raises(ManifestError, match="channels/homefeed/canary holds the pointer of homefeed/prod"):
        read_channel(store, "homefeed", "canary")
    with pytest.raises(ManifestError, match="channels/homefeed/prod holds the pointer of other/prod"):
        read_channel_for_update(store, "homefeed", "prod")


def test_a_pointer_path_that_is_a_folder_is_refused(store):
    store.put_bytes("channels/homefeed/prod/x", b"{}")
    with pytest.raises(ManifestError, match="channels/homefeed/prod is a folder, not a channel pointer"):
        read_channel(store, "homefeed", "prod")
    with pytest.raises(ManifestError, match="channels/homefeed/prod is a folder, not a channel pointer"):
        read_channel_for_update(store, "homefeed", "prod")


def test_a_swap_removes_what_a_killed_swap_left(store, monkeypatch):
    if not store.is_local:
        pytest.skip("S3 swaps are one conditional PUT: nothing is left behind")
    key = "channels/homefeed/prod"
    store.swap(key, _pointer(version="v1"), None)
    _, token = store.read_pointer(key)
    real_replace = os.replace

    def die(src, dst):
        raise Killed(src)

    monkeypatch.setattr(local_writes.os, "replace", die)  # where the swap calls it
    with pytest.raises(Killed):
        store.swap(key, _pointer(version="v2"), token)
    monkeypatch.setattr(local_writes.os, "replace", real_replace)
    folder = os.path.dirname(store.local_path(key))
    assert [n for n in os.listdir(folder) if ".tmp-" in n] != []  # what a kill leaves
    store.swap(key, _pointer(version="v3"), token)  # the lock is free again: the dead swapper's file goes
    assert sorted(os.listdir(folder)) == ["prod", "prod.lock"]
    assert read_channel(store, "homefeed", "prod").version == "v3"


def test_put_never_rewrites_a_file_in_place(store, tmp_path):
    """A reader that mapped the old file keeps its bytes; the new file is read-only (local)."""
    if not store.is_local:
        pytest.skip("S3 objects are replaced whole")
    store.put_bytes("bundles/x/v1/a.bin", b"old-bytes")
    path = store.local_path("bundles/x/v1/a.bin")
    with open(path, "rb") as held:
        inode = os.fstat(held.fileno()).st_ino
        src = tmp_path / "new.bin"
        src.write_bytes(b"new")
        store.put_file(str(src), "bundles/x/v1/a.bin")
        assert held.read() == b"old-bytes"
    assert os.stat(path).st_ino != inode and store.get_bytes("bundles/x/v1/a.bin") == b"new"
    assert os.stat(path).st_mode & 0o777 == 0o444
    assert [n for n in os.listdir(os.path.dirname(path))] == ["a.bin"]


def test_identity_tells_stores_apart_without_secrets(tmp_path):
    a = Store("s3://bucket/serving", S3Options(endpoint_url="http://127.0.0.1:9000", access_key="AKIDX",
                                                secret_key="s3cr3t-value"))
    same = Store("s3://bucket/serving/", S3Options(endpoint_url="http://127.0.0.1:9000", access_key="OTHER",
                                                   secret_key="other-secret"))
    assert a.identity == same.identity  # the keys are not part of what the store is
    others = {Store("s3://bucket/other", a.s3).identity, Store("s3://bucket/serving", S3Options()).identity,
              Store("s3://bucket/serving", S3Options(endpoint_url="http://127.0.0.1:9001")).identity,
              Store(str(tmp_path)).identity}
    assert len(others) == 4 and a.identity not in others
    assert len(a.identity) == 16 and all(c in "0123456789abcdef" for c in a.identity)
    assert Store(str(tmp_path)).identity == Store(f"file://{tmp_path}").identity



def _ignore_conditions(store: Store) -> None:
    """Make ``store``'s client send its conditional PUTs without their conditions, signed as sent:
    what a server that ignores ``If-None-Match`` / ``If-Match`` does with them."""
    def strip(request, **_):
        for header in ("If-None-Match", "If-Match"):
            if header in request.headers:
                del request.headers[header]
    store._s3_writes.client("x")[0].meta.events.register("before-sign.s3.PutObject", strip)


def _ignore_delete_conditions(store: Store) -> None:
    """The same for conditional DELETEs only: a server that honours them on PUT but not on DELETE."""
    def strip(request, **_):
        if "If-Match" in request.headers:
            del request.headers["If-Match"]
    store._s3_writes.client("x")[0].meta.events.register("before-sign.s3.DeleteObject", strip)


def _count_puts(store: Store) -> list:
    puts: list = []
    store._s3_writes.client("x")[0].meta.events.register("before-sign.s3.PutObject", lambda request, **_: puts.append(1))
    return puts


@pytest.mark.integration
def test_a_server_that_ignores_conditional_writes_is_refused_before_anything_is_written(s3_server):
    store = Store(f"s3://{BUCKET}/{uuid.uuid4().hex}", s3_server.options)
    _ignore_conditions(store)
    with pytest.raises(store_module.ConditionalWritesIgnored,
                       match=r"accepted writes whose If-None-Match: \* and If-Match condition failed"):
        store.put_if_absent("bundles/homefeed/v1/manifest.json", b"{}")
    with pytest.raises(store_module.ConditionalWritesIgnored):  # a failed check is not remembered as passed
        store.swap("channels/homefeed/prod.json", _pointer(), None)
    assert store.fs.find(store.root) == []  # neither the file, the pointer nor a probe was left


@pytest.mark.integration
def test_a_server_that_ignores_conditional_deletes_is_refused_too(s3_server):
    """An undone first pointer move deletes the pointer on If-Match: a server ignoring that could delete a
    later writer's pointer."""
    store = Store(f"s3://{BUCKET}/{uuid.uuid4().hex}", s3_server.options)
    _ignore_delete_conditions(store)
    with pytest.raises(store_module.ConditionalWritesIgnored, match=r"accepted writes whose DELETE If-Match "
                                                                    r"condition failed"):
        store.put_if_absent("bundles/homefeed/v1/manifest.json", b"{}")
    assert store.fs.find(store.root) == []


@pytest.mark.integration
def test_a_server_that_honours_conditional_writes_is_checked_once_per_store(s3_server):
    store = Store(f"s3://{BUCKET}/{uuid.uuid4().hex}", s3_server.options)
    puts = _count_puts(store)
    assert store.put_if_absent("a.json", b"1") and not store.put_if_absent("a.json", b"2")
    assert len(puts) == 5  # the probe's three, then the two calls'
    assert store.get_bytes("a.json") == b"1" and [p.rsplit("/", 1)[-1] for p in store.fs.find(store.root)] == ["a.json"]
    again = Store(store.uri, s3_server.options)
    puts_again = _count_puts(again)
    assert again.put_if_absent("b.json", b"1") and len(puts_again) == 1  # the same store: not probed again


def test_s3_options_refuse_an_endpoint_with_a_path_or_credentials():
    # pyarrow keeps only host:port of the endpoint while s3a and boto3 keep its path
    with pytest.raises(ValueError, match=r"^S3Options.endpoint_url must be http\(s\)://host\[:port\], got "
                                         r"'http://minio:9000/s3': a path, query or fragment is refused"):
        S3Options(endpoint_url="http://minio:9000/s3")
    with pytest.raises(ValueError, match=r"got 'http://\*\*\*@minio:9000': credentials") as caught:
        S3Options(endpoint_url="http://key:secret@minio:9000")
    assert "secret" not in str(caught.value).replace("AWS_SECRET_ACCESS_KEY", "")
    assert S3Options(endpoint_url="http://127.0.0.1:8333/").endpoint_url == "http://127.0.0.1:8333/"
    with pytest.raises(ValueError, match=r"^S3Options.region must be a region name .* got 'eu west'$"):
        S3Options(region="eu west")  # signed into every request: it would fail only at the first call
    with pytest.raises(ValueError, match=r"^S3Options.region must be .* got None$"):
        S3Options(region=None)
    assert S3Options(region="garage").region == "garage"


#: Every public name store.py defined before the split, and the module that defines it now.
HOME = {
    "S3Options": s3_options, "arrow_s3": s3_options, "endpoint_problem": s3_options, "shown_url": s3_options,
    "file_digest": digests, "sha256_stream": digests,
    "Store": bundle_store, "PointerConflict": bundle_store, "mtime": bundle_store,
    "ConditionalWritesIgnored": s3_conditional,
    "list_channels": bundle_layout, "read_channel": bundle_layout, "read_channel_for_update": bundle_layout,
    "read_manifest": bundle_layout,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(store_module.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(store_module, name) is getattr(module, name), name
        assert module.__dict__[name].__module__ == module.__name__, name


def test_the_facade_imports_with_the_base_install_only():
    code = ("import sys, pinrec.export.serving.store\n"
            "heavy = {'torch', 'pyspark', 'pandas', 'mlflow', 'onnx', 'boto3', 'botocore'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
