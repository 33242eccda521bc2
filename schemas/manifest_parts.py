"""The parts of a bundle manifest: its files (:class:`FileEntry`, by role), offline :class:`Metrics`,
:class:`Lineage` and the gate's :class:`Blessing`.

Each is a frozen dataclass whose constructor checks its values and raises
:class:`~pinrec.schemas.bundle_names.ManifestError`; :class:`~pinrec.schemas.bundle_manifest.Manifest`
holds one of each (files: a tuple). Base install only (the standard library).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from .bundle_names import _SHA256, MANIFEST_FILE, ManifestError, check_relpath

#: What each file of a bundle is; the loader opens files by role.
#: ``(min, max)`` files per role; ``None`` = no upper bound.
ROLES: dict[str, tuple[int, int | None]] = {
    "index_meta": (1, 1), "index_shard": (1, None), "ranker": (1, 1), "encoder": (1, 1), "pins": (1, 1),
    "extra": (0, None),
}
#: Columns (and Arrow type names) the pin metadata Parquet must hold.
PIN_COLUMNS: dict[str, str] = {"pin_id": "int64", "category": "string", "created_at": "timestamp",
                               "nsfw": "bool", "blocked": "bool"}


@dataclass(frozen=True)
class FileEntry:
    """One file of a bundle: ``path`` relative to the version folder, ``size`` bytes, ``sha256`` hex."""

    path: str
    size: int
    sha256: str
    role: str = "extra"

    def __post_init__(self) -> None:
        check_relpath(self.path)
        if self.path == MANIFEST_FILE:
            raise ManifestError(f"{MANIFEST_FILE} cannot list itself")
        if self.size < 0:
            raise ManifestError(f"{self.path}: size must be >= 0, got {self.size}")
        if not _SHA256.fullmatch(self.sha256):
            raise ManifestError(f"{self.path}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if self.role not in ROLES:
            raise ManifestError(f"{self.path}: unknown role {self.role!r}; use one of {sorted(ROLES)}")


@dataclass(frozen=True)
class Metrics:
    """Offline metrics of a candidate: retrieval recall@k, serving latency, per-task AUC and
    expected calibration error of the ranker (tasks e.g. ``closeup``, ``save``), and ``drift``:
    the newest day against the training window (``score_psi.<task>`` and its sampling noise
    ``score_psi_noise.<task>``, ``feature_drift.<column>``,
    ``null_rate_shift.<column>``, ``label_rate_shift.<task>``, each >= 0; see
    :mod:`pinrec.jobs.monitoring.drift`), and ``funnel``: the serving
    funnel replayed on the test day (``candidates.merged.recall@500.saves``, ``served.hr@50``,
    ``served.cosine``...; see :mod:`pinrec.jobs.funnel.replay`), finite values (a mean cosine may be
    negative), and ``stability``: how far the bundle's PinSage embeddings moved from the previous
    version (``overlap_at_10``, ``procrustes_cosine``, ...; see :mod:`pinrec.jobs.pinsage.pinsage_versions`) and
    from the champion's (``champion_overlap_at_10``; :mod:`pinrec.jobs.publish.champion_stability`),
    finite. ``drift``, ``funnel`` and ``stability`` are optional and left out of the JSON when empty, so
    manifests without them read and write exactly as before."""

    k: int
    recall_at_k: float
    latency_p50_ms: float
    latency_p99_ms: float
    auc: dict[str, float] = field(default_factory=dict)
    calibration_error: dict[str, float] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict, metadata={"omit_empty": True})
    funnel: dict[str, float] = field(default_factory=dict, metadata={"omit_empty": True})
    stability: dict[str, float] = field(default_factory=dict, metadata={"omit_empty": True})

    def __post_init__(self) -> None:
        if not _is_int(self.k) or self.k < 1:
            raise ManifestError(f"metrics.k must be an integer >= 1, got {self.k!r}")
        object.__setattr__(self, "k", int(self.k))
        for name in ("recall_at_k", "latency_p50_ms", "latency_p99_ms"):
            object.__setattr__(self, name, _number(f"metrics.{name}", getattr(self, name)))
        for name in ("auc", "calibration_error", "drift", "funnel", "stability"):
            values = _mapping(f"metrics.{name}", getattr(self, name))
            object.__setattr__(self, name, {t: _number(f"metrics.{name}[{t!r}]", v) for t, v in values.items()})
        for name in ("funnel", "stability"):
            bad = {key: v for key, v in getattr(self, name).items() if not math.isfinite(v)}
            if bad:
                raise ManifestError(f"metrics.{name} values must be finite, got {bad}")
        values = {"recall_at_k": self.recall_at_k, "latency_p50_ms": self.latency_p50_ms,
                  "latency_p99_ms": self.latency_p99_ms, **{f"auc[{t}]": v for t, v in self.auc.items()},
                  **{f"calibration_error[{t}]": v for t, v in self.calibration_error.items()},
                  **{f"drift[{t}]": v for t, v in self.drift.items()}}
        for key, value in values.items():
            if not math.isfinite(value) or value < 0:
                raise ManifestError(f"metrics.{key} must be finite and >= 0, got {value}")
        for key, value in {"recall_at_k": self.recall_at_k, **{f"auc[{t}]": v for t, v in self.auc.items()}}.items():
            if value > 1:
                raise ManifestError(f"metrics.{key} must be <= 1, got {value}")
        if set(self.auc) != set(self.calibration_error):
            raise ManifestError(f"metrics: auc tasks {sorted(self.auc)} and calibration_error tasks "
                                f"{sorted(self.calibration_error)} differ")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(where: str, value: Any) -> float:
    """A real number as a float (numpy's too); a bool, a string or None is a ManifestError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ManifestError(f"{where} must be a number, got {value!r}")
    return float(value)


def _mapping(where: str, value: Any) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ManifestError(f"{where} must be a mapping with string keys, got {value!r:.120}")
    return value


@dataclass(frozen=True)
class Lineage:
    """What the bundle was built from: code (git sha), configuration hash, MLflow runs by role
    (``pinsage``, ``ranker``, ``index``...), the Delta version of every input table, and the publish
    step's cache ``fingerprint`` (omitted when empty)."""

    code_version: str
    config_hash: str
    mlflow_run_ids: dict[str, str] = field(default_factory=dict)
    delta_versions: dict[str, int] = field(default_factory=dict)
    #: the publish step's fingerprint (pinrec.jobs.orchestration.step_cache): a rerun with the same one reuses this bundle
    fingerprint: str = field(default="", metadata={"omit_empty": True})

    def __post_init__(self) -> None:
        for name in ("code_version", "config_hash"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ManifestError(f"lineage.{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not isinstance(self.fingerprint, str):
            raise ManifestError(f"lineage.fingerprint must be a string, got {self.fingerprint!r}")
        runs = _mapping("lineage.mlflow_run_ids", self.mlflow_run_ids)
        if bad := {t: v for t, v in runs.items() if not isinstance(v, str)}:
            raise ManifestError(f"lineage.mlflow_run_ids values must be strings (run ids), got {bad}")
        versions = _mapping("lineage.delta_versions", self.delta_versions)
        if bad := {t: v for t, v in versions.items() if not _is_int(v) or v < 0}:
            raise ManifestError(f"lineage.delta_versions values must be integers >= 0, got {bad}")
        object.__setattr__(self, "delta_versions", {t: int(v) for t, v in versions.items()})


@dataclass(frozen=True)
class Blessing:
    """The gate's verdict: ``blessed`` with the failed checks in ``reasons``; ``baseline_version``
    is the version the channel pointed to when the candidate was judged (None for the first);
    ``forced`` when the candidate was promoted regardless of the verdict; ``notes``: checks the gate
    could not make and why (left out of the JSON when empty)."""

    blessed: bool
    reasons: tuple[str, ...] = ()
    baseline_version: str | None = None
    forced: bool = False
    notes: tuple[str, ...] = field(default=(), metadata={"omit_empty": True})

    def __post_init__(self) -> None:
        if self.blessed and self.reasons:
            raise ManifestError(f"a blessed verdict carries no failure reasons, got {self.reasons}")
        if not self.blessed and not self.reasons:
            raise ManifestError("an unblessed verdict needs at least one reason")
