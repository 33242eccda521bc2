"""Loading a published bundle: :func:`load` (one version, opened and verified) and :class:`Loader`
(serves one channel and follows it).

``load(uri, name, channel="prod")`` (or ``version=...``) reads the channel pointer and the
version's ``manifest.json``, fetches the version's files verified
(:mod:`pinrec.export.serving.bundle_fetch`) and opens them (:mod:`pinrec.export.serving.bundle_open`).

:class:`Loader` holds the current :class:`~pinrec.export.serving.bundle_open.Bundle`; ``refresh()``
loads the channel's new version completely, and runs the loader's checks on it (``check(bundle)``,
raising when it cannot serve: :class:`~pinrec.export.serving.recommend.LoaderRecommender` registers
one that builds a recommender and answers a probe request), before swapping one reference; a failed
load or check raises and keeps the old bundle serving.

Base install only: numpy, pyarrow, fsspec, faiss, onnxruntime (no Spark, torch, MLflow, Airflow).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import traceback
from collections.abc import Callable

from .bundle_fetch import _fetch, _why, resolve
from .bundle_open import Bundle, BundleError, BundleUnavailable, _open
from .store import S3Options, Store

# the name it logged under before loader.py was split: filters may match it
log = logging.getLogger("pinrec.export.serving.loader")


def load(uri: str, name: str, channel: str = "prod", *, version: str | None = None, cache_dir: str | None = None,
         s3: S3Options | None = None) -> Bundle:
    """Open bundle ``name`` at the version ``channel`` points to, or at ``version`` when given."""
    return _load(Store(uri, s3), name, channel, version, cache_dir)


def _load(store: Store, name: str, channel: str, version: str | None, cache_dir: str | None) -> Bundle:
    try:
        manifest, data, root = _fetch(store, name, channel, version, cache_dir)
    except BundleError:
        raise
    except OSError as e:  # anything else the store or the local disk raised: name where and what to check
        raise BundleUnavailable(f"cannot read {name}/{version or channel} from {store!r}: {_why(e, store)}") from e
    return _open(manifest, root, hashlib.sha256(data).hexdigest())


class Loader:
    """Serves one channel of one bundle; ``refresh()`` follows the channel atomically.

    ``check``: called with every bundle before it serves (the first one included), raising when it
    cannot serve (more with :meth:`add_check`). ``failed_refreshes`` counts the refreshes that
    raised, ``last_error`` holds the latest one's error.

    >>> loader = Loader("s3://bucket/serving", "homefeed", s3=S3Options(endpoint_url=...))  # doctest: +SKIP
    >>> loader.bundle.shards[0].search(q, 10)                                              # doctest: +SKIP
    """

    def __init__(self, uri: str, name: str, channel: str = "prod", *, cache_dir: str | None = None,
                 s3: S3Options | None = None, check: Callable[[Bundle], None] | None = None) -> None:
        self.name, self.channel, self.cache_dir = name, channel, cache_dir
        self._store = Store(uri, s3)
        self._refresh_lock = threading.Lock()
        self._checks: list[Callable[[Bundle], None]] = []
        self._refused: tuple[str, str, str] | None = None  # (version, manifest sha, why) of what a check refused
        self.failed_refreshes, self.last_error = 0, None
        self._bundle = _load(self._store, name, channel, None, cache_dir)
        if check is not None:
            self.add_check(check)

    @property
    def bundle(self) -> Bundle:
        """The bundle being served; take one reference per request (a refresh swaps it)."""
        return self._bundle

    @property
    def version(self) -> str:
        return self._bundle.version

    def add_check(self, check: Callable[[Bundle], None]) -> None:
        """Run ``check(bundle)`` on the bundle serving now (its error propagates, and the check is
        not added) and on every version a refresh would switch to."""
        with self._refresh_lock:
            check(self._bundle)
            self._checks.append(check)

    def refresh(self) -> bool:
        """Switch to the channel's current version; True if it changed. The switch happens only
        once the version loaded completely and every check passed. On any failure the old bundle
        keeps serving (never a half-switched loader), the failure is logged and counted
        (``failed_refreshes``, ``last_error``) and a :class:`BundleError` propagates (a failed
        check's error as its cause). A version a check refused is not loaded again: refreshing
        while the channel still points to it raises the same error at once."""
        with self._refresh_lock:
            try:
                pointer = resolve(self._store, self.name, self.channel)
                if (pointer.version, pointer.manifest_sha256) == (self._bundle.version, self._bundle.manifest_sha256):
                    return False  # the same bundle (a name prune freed and a publish reused is not)
                if self._refused is not None and self._refused[:2] == (pointer.version, pointer.manifest_sha256):
                    raise BundleError(self._refused[2])
                new = _load(self._store, self.name, self.channel, None, self.cache_dir)
                for check in self._checks:
                    try:
                        check(new)
                    except Exception as e:
                        traceback.clear_frames(e.__traceback__)  # last_error must not keep what the check built alive
                        why = f"refusing {new.name}/{new.version}: it cannot serve ({type(e).__name__}: {e})"
                        self._refused = (pointer.version, pointer.manifest_sha256, why)
                        raise BundleError(why) from e
            except Exception as e:
                self.failed_refreshes, self.last_error = self.failed_refreshes + 1, e
                log.warning("loader %s/%s: refresh failed, still serving %s: %s", self.name, self.channel,
                            self._bundle.version, e)
                raise
            old, self._bundle = self._bundle, new
            log.info("loader %s/%s: %s -> %s", self.name, self.channel, old.version, new.version)
            return True

    def __repr__(self) -> str:
        return f"Loader({self._store!r}, {self.name}/{self.channel} -> {self._bundle.version})"
