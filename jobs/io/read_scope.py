"""Read scopes: which writer a catalog's reads belong to, so that a commit's lineage is its writer's own.

One :class:`~pinrec.jobs.io.catalog.Catalog` may serve several writers at once (ingest's tables of one
foreign-key level in threads, the features' views written side by side) or one after the other (ingest's
levels). Every read goes into the catalog's :attr:`~pinrec.jobs.io.catalog.Catalog.reads` (the job's
lineage, what the step cache checks its fingerprints against) and, when a scope of that catalog is
open in the current context, into that scope's own set, which a write in the scope records as its
``read`` instead of everything the catalog read.

A scope lives in a :class:`contextvars.ContextVar`: it is the current thread's (a thread a pool
starts begins with no scope), and a thread run in a copy of the context
(``contextvars.copy_context().run``) starts with the reads made so far. The set is replaced, never
changed in place, so what such a thread reads stays its own.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["current_reads", "open_scope", "record_read"]

#: the scopes open in this context, innermost last: (owner, key, {table: Delta version}); the owner is a
#: catalog, compared by identity (two catalogs of one warehouse are two jobs); the key names the scope
_SCOPES: contextvars.ContextVar[tuple[tuple[Any, object, Mapping[str, int]], ...]] = contextvars.ContextVar(
    "pinrec_catalog_read_scopes", default=())


@contextlib.contextmanager
def open_scope(owner: Any, reads: Mapping[str, int] | None = None) -> Iterator[None]:
    """A scope of ``owner`` for the body, starting from ``reads`` (default: none): reads of ``owner`` in
    the body (this context) go into it, not into a scope of ``owner`` around it."""
    key = object()
    _SCOPES.set((*_SCOPES.get(), (owner, key, dict(reads or {}))))
    try:
        yield
    finally:  # only this scope goes: what the body read into another owner's scope around it stays there
        _SCOPES.set(tuple(s for s in _SCOPES.get() if s[1] is not key))


def _innermost(owner: Any) -> int | None:
    scopes = _SCOPES.get()
    return next((i for i in range(len(scopes) - 1, -1, -1) if scopes[i][0] is owner), None)


def record_read(owner: Any, table: str, version: int) -> None:
    """Note ``table@version`` in the innermost scope of ``owner`` open in this context, if any."""
    at = _innermost(owner)
    if at is not None:
        scopes = _SCOPES.get()
        _, key, reads = scopes[at]
        _SCOPES.set((*scopes[:at], (owner, key, {**reads, table: version}), *scopes[at + 1:]))


def current_reads(owner: Any) -> dict[str, int] | None:
    """``{table: version}`` of the innermost scope of ``owner`` open in this context; None when none is."""
    at = _innermost(owner)
    return None if at is None else dict(_SCOPES.get()[at][2])
