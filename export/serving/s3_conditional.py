"""The conditional requests of an S3 :class:`~pinrec.export.serving.bundle_store.Store`, through boto3.

S3 ``PutObject`` with ``If-None-Match: *`` (create only if absent) or ``If-Match: <ETag>`` (replace
only what was read), and ``DeleteObject`` with ``If-Match``: what ``put_if_absent``, ``swap`` and
``delete_pointer`` rest on. boto3 is imported only here, on the first request (the ``dev`` and
``pipeline`` extras). Before its first one, a store checks once per process that the server refuses
a write whose condition fails (:meth:`S3Conditional.verify`): some S3-compatible servers ignore the
headers, and on them a compare-and-swap would silently let two publishers win.
"""
from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

from .s3_options import S3Options

if TYPE_CHECKING:
    from .bundle_store import Store

__all__ = ["ConditionalWritesIgnored", "S3Conditional"]

#: S3 stores (:attr:`Store.identity`) whose conditional writes this process has checked
_VERIFIED: set[str] = set()
_PROBE = "_pinrec_probe"
#: an ETag no object has: a condition on it must fail
_WRONG_ETAG = '"' + "0" * 32 + '"'


class ConditionalWritesIgnored(RuntimeError):
    """The S3 server accepted a write whose condition (``If-None-Match`` / ``If-Match``) failed: it
    ignores conditional writes, so a compare-and-swap on it could silently lose a pointer move."""


def _refused(e) -> bool:
    """Whether a botocore ``ClientError`` says the request's condition failed."""
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status in (412, 409) or e.response.get("Error", {}).get("Code") in (
        "PreconditionFailed", "ConditionalRequestConflict")


class S3Conditional:
    """The conditional requests of one S3 ``store`` (keys as :meth:`Store.path` resolves them); its
    boto3 client is created on the first request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._client = None
        self._client_lock = threading.Lock()

    def client(self, key: str):
        """(boto3 client, bucket, object key) of the store's ``key``."""
        with self._client_lock:  # boto3 sessions are not thread-safe; clients are
            if self._client is None:
                import boto3  # only for conditional writes on S3

                opts = self.store.s3 or S3Options()
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=opts.endpoint_url, region_name=opts.region,
                    aws_access_key_id=opts.access_key, aws_secret_access_key=opts.secret_key)
        bucket, _, obj = self.store.path(key).partition("/")
        return self._client, bucket, obj

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str | None:
        """The new object's ETag, None when the condition failed."""
        from botocore.exceptions import ClientError

        client, bucket, obj = self.client(key)
        cond = {"IfNoneMatch": "*"} if if_none_match else {"IfMatch": if_match}
        try:
            resp = client.put_object(Bucket=bucket, Key=obj, Body=data, **cond)
        except ClientError as e:
            if _refused(e):
                return None
            raise
        return resp["ETag"]

    def delete(self, key: str, etag: str) -> bool:
        """Delete ``key`` if its ETag is ``etag``; False (nothing deleted) when the server refuses (412)."""
        from botocore.exceptions import ClientError

        client, bucket, obj = self.client(key)
        try:
            client.delete_object(Bucket=bucket, Key=obj, IfMatch=etag)
        except ClientError as e:
            if _refused(e):
                return False
            raise
        return True

    def read(self, key: str) -> tuple[bytes | None, str | None]:
        """(bytes, ETag) of ``key``, (None, None) when absent; ``IsADirectoryError`` on a folder."""
        client, bucket, obj = self.client(key)
        try:
            resp = client.get_object(Bucket=bucket, Key=obj)
        except client.exceptions.NoSuchKey:
            if self.store.fs.isdir(self.store.path(key)):
                raise IsADirectoryError(f"{key} is a folder") from None
            return None, None
        return resp["Body"].read(), resp["ETag"]

    def verify(self) -> None:
        """:meth:`Store.verify_conditional_writes` on S3: raise :class:`ConditionalWritesIgnored` unless
        the server refuses writes whose condition fails; once per store (its identity) and process."""
        store = self.store
        if store.identity in _VERIFIED:
            return
        key = f"{_PROBE}/{uuid.uuid4().hex}"
        try:
            if self.put(key, b"created", if_none_match=True) is None:
                raise ConditionalWritesIgnored(f"{store!r}: the S3 server refused to create a new object with "
                                               "If-None-Match: * (412 on a fresh key): its conditional writes "
                                               "cannot be relied on")
            ignored = [cond for cond, kwargs in (("If-None-Match: *", {"if_none_match": True}),
                                                 ("If-Match", {"if_match": _WRONG_ETAG}))
                       if self.put(key, b"must be refused", **kwargs) is not None]
            if self.delete(key, _WRONG_ETAG):  # an undone first move deletes this way
                ignored.append("DELETE If-Match")
        finally:
            store.delete(key)
        if ignored:
            endpoint = (store.s3 or S3Options()).endpoint_url or "AWS"
            raise ConditionalWritesIgnored(
                f"{store!r}: the S3 server at {endpoint} accepted writes whose {' and '.join(ignored)} condition "
                "failed, so it ignores conditional writes. Publishing, rollback and prune need them to move "
                "channel pointers safely (AWS S3, MinIO and SeaweedFS honour them; docs/deploy.md). Nothing "
                "was changed.")
        _VERIFIED.add(store.identity)
