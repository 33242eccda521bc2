"""Versioned, atomic publishing of serving bundles behind the blessing gate; retention; rollback.

The public names of four modules, importable from here as before they were split out (the jobs, the
CLI, the benchmarks and the tests import them from this module); a fifth,
:mod:`pinrec.export.build.version_claims` (a publisher's claim on the version it writes), has only
private helpers, which ``publish_protocol`` and ``channel_moves`` share:

- :mod:`pinrec.export.build.publish_protocol`: :func:`publish` (claim, upload, verify, judge, write
  the manifest, move the channel; what a publisher killed at any step leaves) and
  :func:`publish_bundle`, the job that publishes then prunes;
- :mod:`pinrec.export.build.channel_moves`: :func:`rollback` and :func:`promote`, and the checked
  compare-and-swap every channel move goes through;
- :mod:`pinrec.export.build.publish_types`: :class:`PublishConfig`, :class:`BundleFiles`,
  :class:`PublishResult`, :class:`PublishError`, :data:`Hook`;
- :mod:`pinrec.export.build.retention`: :func:`prune` (and, from the serving side,
  :class:`~pinrec.export.serving.store.PointerConflict`, which a publisher that lost the swap raises).

The split modules log as ``pinrec.export.build.publish``, this module's name, as before.
"""
from __future__ import annotations

from pinrec.export.serving.store import PointerConflict

from .channel_moves import promote, rollback
from .publish_protocol import publish, publish_bundle
from .publish_types import BundleFiles, Hook, PublishConfig, PublishError, PublishResult
from .retention import prune

__all__ = ["BundleFiles", "Hook", "PointerConflict", "PublishConfig", "PublishError", "PublishResult", "promote",
           "prune", "publish", "publish_bundle", "rollback"]
