"""The step cache: skip a pipeline step whose inputs, code and config did not change.

Every step of :mod:`pinrec.jobs.orchestration.cached_steps` computes its fingerprint
(:func:`pinrec.jobs.io.fingerprint.fingerprint`: the source of the modules it runs, its resolved
config section(s), the Delta versions of the tables it reads and the fingerprints of the steps it
builds on) and records it with its output, never in a side database:

* a step that writes Delta tables puts it in the commit's ``userMetadata`` under ``"cache"``
  (:class:`~pinrec.jobs.io.catalog.Catalog` ``stamp``): ``{"step": s, "fingerprint": f}`` for a
  whole-table step, ``{"step": s, "days": {day: f}}`` for a per-day step (ingest, features), whose
  days are fingerprinted one by one so that landing a new day recomputes only that day;
* a step that writes an artifact folder puts ``_fingerprint.json`` in it (:func:`mark_folder`);
* publish puts it in the bundle's manifest (``lineage.fingerprint``); landing in
  ``<landing>/_pinrec_landing.json``.

A rerun compares: the output's recorded fingerprint equal to the one computed now means the step is
skipped (``[ranker] cached (fingerprint 1a2b3c4d5e6f)``) and its output reused. A table is up to date
only when its newest data-changing commit carries the fingerprint (a later write by anyone else, a
DELETE or MERGE, makes it stale); a day only when the newest write of that day does.
``cache.enabled = false`` (``--no-cache``) and ``cache.force`` (``--force STEP``) recompute.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from pinrec.jobs.config import StepCacheConfig
from pinrec.jobs.io.catalog import SAME_DATA_OPERATIONS, Catalog
from pinrec.jobs.io.lake import Location

__all__ = ["FINGERPRINT_FILE", "Cached", "StepCache", "day_fingerprints", "folder_fingerprint", "mark_folder",
           "table_fingerprint"]

FINGERPRINT_FILE = "_fingerprint.json"
_WRITES = {"WRITE", "CREATE TABLE AS SELECT", "REPLACE TABLE AS SELECT", "CREATE OR REPLACE TABLE AS SELECT"}


@dataclass(frozen=True)
class Cached:
    """A skipped step: its ``fingerprint``, the ``output`` it reuses (a folder URI, a bundle version,
    a dict; None where the tables themselves are the output) and a line about it (``detail``)."""

    step: str
    fingerprint: str
    detail: str = ""
    output: Any = None

    def render(self) -> str:
        return f"cached (fingerprint {self.fingerprint[:12]}" + (f"; {self.detail})" if self.detail else ")")


class StepCache:
    """Which steps may be reused (``cache`` config) and the log of what was (:attr:`skipped`)."""

    def __init__(self, cfg: StepCacheConfig | None = None) -> None:
        self.cfg = cfg or StepCacheConfig()
        self.skipped: list[str] = []
        self.ran: list[str] = []

    def reuse(self, step: str) -> bool:
        """True when ``step``'s recorded output may be reused (caching on and the step not forced)."""
        return self.cfg.enabled and step not in self.cfg.force

    def hit(self, step: str, fingerprint: str, recorded: str | None) -> bool:
        """Whether ``step`` is skipped: reuse allowed and ``recorded`` equal to ``fingerprint``;
        notes the outcome in :attr:`skipped` / :attr:`ran`."""
        if self.reuse(step) and recorded == fingerprint:
            self.skipped.append(step)
            return True
        self.ran.append(step)
        return False


def _data_commits(catalog: Catalog, name: str):
    """The table's commits that changed data, newest first; a commit of an unknown kind counts as one."""
    return [c for c in catalog.history(name) if c.operation not in SAME_DATA_OPERATIONS]


def table_fingerprint(catalog: Catalog, name: str, step: str) -> str | None:
    """The fingerprint ``step`` recorded in table ``name``'s newest data-changing commit; None when
    the table is absent or that commit is not a write of ``step`` (someone else changed it since)."""
    commits = _data_commits(catalog, name)
    if not commits or commits[0].operation not in _WRITES:
        return None
    stamp = commits[0].user_metadata.get("cache") or {}
    return stamp.get("fingerprint") if stamp.get("step") == step else None


def day_fingerprints(catalog: Catalog, name: str, step: str) -> dict[dt.date, str | None]:
    """For every day a write of table ``name`` replaced: the fingerprint ``step`` recorded for it in the
    newest commit that wrote the day (None when that commit is not ``step``'s). Days older than a
    commit that changed rows without saying which days (a DELETE, a MERGE, a write by predicate)
    are left out: nothing is known of them."""
    out: dict[dt.date, str | None] = {}
    for commit in _data_commits(catalog, name):
        days = commit.user_metadata.get("wrote_days")
        if commit.operation not in _WRITES or days is None:
            break
        stamp = commit.user_metadata.get("cache") or {}
        recorded = stamp.get("days", {}) if stamp.get("step") == step else {}
        for day in days:
            out.setdefault(dt.date.fromisoformat(day), recorded.get(day))
    return out


def folder_record(folder: Location | None, step: str) -> dict:
    """What ``step`` recorded in ``folder`` (:func:`mark_folder`); {} when there is none."""
    if folder is None or not (folder / FINGERPRINT_FILE).is_file():
        return {}
    try:
        meta = json.loads((folder / FINGERPRINT_FILE).read_text())
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) and meta.get("step") == step else {}


def folder_fingerprint(folder: Location | None, step: str) -> str | None:
    """The fingerprint ``step`` recorded in ``folder`` (:func:`mark_folder`); None when there is none."""
    return folder_record(folder, step).get("fingerprint")


def mark_folder(folder: Location, step: str, fingerprint: str, **extra: Any) -> None:
    """Record ``step``'s ``fingerprint`` (and JSON-able ``extra``) in ``folder/_fingerprint.json``, with
    a ``run`` id of its own: a step forced to run again on the same inputs gets another one, so what
    consumes the folder (publish) sees new content even where the fingerprint is the same."""
    record = {"step": step, "fingerprint": fingerprint, "run": uuid.uuid4().hex, **extra}
    (folder / FINGERPRINT_FILE).write_text(json.dumps(record, sort_keys=True))
