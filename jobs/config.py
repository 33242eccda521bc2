"""One typed, frozen configuration for every pinrec job.

Defaults live in code; a YAML file (``--config``) and ``--set section.key=value`` overrides only
change what they name. Unknown keys and wrong types raise :class:`ConfigError` that names the
offending key, so a typo never silently falls back to a default (Feast's ``extra="forbid"``).

Every job receives the narrowest sub-config it needs (``cfg.spark``, ``cfg.ingest``, ...).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pinrec.export.build.blessing import BlessingConfig
from pinrec.export.build.publish import PublishConfig
from pinrec.export.index_choice import IndexConfig
from pinrec.export.serving.feature_store import RedisConfig
from pinrec.export.serving.recommend import RecommendConfig
from pinrec.export.serving.store import S3Options
from pinrec.jobs.io.lake import Location
from pinrec.jobs.monitoring.config import MonitoringConfig
from pinrec.jobs.ranking.config import RankerJobConfig
from pinrec.jobs.retrieval.config import RetrievalEvalConfig
from pinrec.models.config import (
    CalibrationConfig,
    PinSageTrainConfig,
    RankerConfig,
    RankerTrainConfig,
)


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


@dataclass(frozen=True)
class StorageConfig:
    """Where things live. Relative paths are resolved against the working directory.

    ``landing``, ``warehouse`` and ``artifacts`` are each a local path or an ``s3://`` /
    ``s3a://bucket/prefix`` URI (:class:`~pinrec.jobs.io.lake.Location`; Spark always gets
    ``s3a://``). ``s3_endpoint_url`` / ``s3_region``: the one S3 server of all of them, of every
    bundle store a job opens (publish, rollback, prune, recommend, the demo) and of Spark's s3a
    (:func:`pinrec.jobs.io.spark.s3a_conf`); None: the AWS environment's
    (``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``; ``AWS_REGION`` or ``AWS_DEFAULT_REGION``,
    filled in by :func:`load_config` when ``main()`` passes its environment), else AWS itself and
    ``us-east-1``. Keys never live here: the AWS SDKs read them from their own chain.
    ``mlflow_artifacts``: where a new MLflow experiment keeps its run artifacts (``s3://`` / ``s3a://``
    bucket and prefix, a local path or ``file://``), reached with the S3 settings above; None: an
    ``mlartifacts/`` folder beside a SQLite store, a tracking server's own artifact root.
    """

    landing: str = "./var/landing"
    warehouse: str = "./var/warehouse"
    artifacts: str = "./var/artifacts"
    mlflow_tracking_uri: str = "sqlite:///var/mlflow.db"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    mlflow_artifacts: str | None = None

    def __post_init__(self) -> None:
        if self.s3_endpoint_url is not None and urlparse(self.s3_endpoint_url).scheme not in ("http", "https"):
            raise ConfigError(f"storage.s3_endpoint_url (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) must start "
                              f"with http:// or https://, got {self.s3_endpoint_url!r}")
        for name in LAKE_LOCATIONS:
            try:
                Location(getattr(self, name))
            except ValueError as e:
                raise ConfigError(f"storage.{name}: {e}") from None
        if self.mlflow_artifacts is not None:
            parsed = urlparse(self.mlflow_artifacts)
            if parsed.scheme not in ("", "file", "s3", "s3a") or not self.mlflow_artifacts.strip() \
                    or (parsed.scheme in ("s3", "s3a") and not parsed.netloc):
                raise ConfigError(f"storage.mlflow_artifacts must be s3://bucket[/prefix], s3a://bucket[/prefix], "
                                  f"a local path or file://, or null; got {self.mlflow_artifacts!r}")

    def location(self, name: str) -> Location:
        """``storage.<name>`` (landing, warehouse, artifacts) as a Location on this S3 server."""
        if name not in LAKE_LOCATIONS:
            raise ValueError(f"unknown storage location {name!r}; allowed: {', '.join(LAKE_LOCATIONS)}")
        return Location(getattr(self, name), s3_options(self))

    @property
    def spark_s3(self) -> S3Options | None:
        """What Spark's s3a is set up with (:func:`pinrec.jobs.io.spark.get_spark`): this S3
        server when any of landing, warehouse or artifacts is on S3, else None (no s3a jars)."""
        return s3_options(self) if any(Location(getattr(self, n)).is_s3 for n in LAKE_LOCATIONS) else None


#: The storage fields that name a folder of the lake.
LAKE_LOCATIONS = ("landing", "warehouse", "artifacts")


def s3_options(storage: StorageConfig) -> S3Options:
    """The connection every bundle store of the jobs is opened with (one place: the CLI, the DAG
    tasks and the demo all call this): ``storage.s3_endpoint_url`` and ``s3_region``; keys from the
    AWS SDK's own chain (``AWS_ACCESS_KEY_ID`` ...), never from the config."""
    return S3Options(endpoint_url=storage.s3_endpoint_url, region=storage.s3_region or "us-east-1")


@dataclass(frozen=True)
class SparkConfig:
    """Spark session settings. ``jars_dir`` holds the Delta jars resolved at setup time.

    ``master``: ``local[*]`` or a cluster URL (``spark://host:7077``...). ``driver_host`` /
    ``driver_bind_address``: the address executors reach the driver at and the one it listens on
    (None: 127.0.0.1 with a ``local`` master, Spark's own choice otherwise, which a cluster needs).
    ``executor_memory`` / ``executor_cores``: per executor on a cluster (None: Spark's default).
    ``extra``: any other ``spark.*`` setting, applied last.
    """

    master: str = "local[*]"
    app_name: str = "pinrec"
    shuffle_partitions: int = 8
    driver_memory: str = "2g"
    driver_host: str | None = None
    driver_bind_address: str | None = None
    executor_memory: str | None = None
    executor_cores: int | None = None
    jars_dir: str = "./var/jars"
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.executor_cores is not None and self.executor_cores < 1:
            raise ConfigError(f"spark.executor_cores must be >= 1 or null, got {self.executor_cores}")


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the synthetic world (see :mod:`pinrec.jobs.ingest.synthetic`). ``feed_order``: how a
    session's pins are placed on positions 1..N: ``"random"`` (in the order drawn, so position is
    independent of every feature) or ``"popularity"`` (most popular first, as a popularity-driven
    feed would: position is then confounded with how popular a pin is)."""

    users: int = 1_000
    pins: int = 4_000
    categories: int = 12
    latent_dim: int = 16
    boards_per_user: int = 3
    days: int = 4
    impressions_per_day: int = 20_000
    session_length: int = 20
    fresh_pins_per_day: int = 100
    new_users_per_day: int = 20
    start_date: dt.date = dt.date(2026, 1, 5)
    fault_rate: float = 0.002
    duplicate_rate: float = 0.002
    feed_order: str = "random"


@dataclass(frozen=True)
class DatasetConfig:
    """Which raw source fills the landing zone.

    ``kind`` is ``"synthetic"`` (the embedded default) or ``"movielens-100k"``; ``path`` is the
    dataset folder for real datasets (e.g. ``/data/ml-100k``).
    """

    kind: str = "synthetic"
    path: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("synthetic", "movielens-100k"):
            raise ConfigError(f"dataset.kind must be 'synthetic' or 'movielens-100k', got {self.kind!r}")
        if self.kind != "synthetic" and not self.path:
            raise ConfigError(f"dataset.path is required for dataset.kind={self.kind!r}")


@dataclass(frozen=True)
class IngestConfig:
    """Validation gate of the ingestion job.

    ``max_failing_fraction``: above this share of quarantined rows a batch is rejected and nothing
    is written to the valid table. ``optional_tables``: tables whose landing partition may be
    missing or empty on a day (nothing new arrived); for the others (impressions, actions) a
    missing or empty partition is an error, since it means logging broke. ``max_future_skew_s``:
    how far past the job's clock an event timestamp may be before it counts as "in the future".
    ``reference_lookback_days``: foreign keys into event tables (actions -> impressions) are
    looked up in that many days before the batch.
    """

    max_failing_fraction: float = 0.05
    optional_tables: tuple[str, ...] = ("users", "pins", "boards", "pin_board_edges")
    max_future_skew_s: int = 300
    reference_lookback_days: int = 7
    report_sample_rows: int = 5

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_failing_fraction <= 1.0:
            raise ConfigError(f"ingest.max_failing_fraction must be in [0, 1], got {self.max_failing_fraction}")


@dataclass(frozen=True)
class FeatureConfig:
    """Daily feature tables (see :mod:`pinrec.jobs.features.features`).

    ``publish_delay_s``: a day's feature row gets ``feature_ts`` = the end of that day and
    ``created_ts`` = ``feature_ts`` + this delay, the time the daily job would have made it
    servable; the point-in-time join never uses a row before its ``created_ts``.
    ``prior_strength``: pseudo-impressions of the Bayesian smoothing of rates.
    ``last_saved_pins`` / ``last_closeup_pins``: length of the user's lists of recent saves and
    closeups (newest first, 30 days), which the PinSage user embeddings average.
    """

    publish_delay_s: int = 3600
    prior_strength: float = 20.0
    last_saved_pins: int = 10
    last_closeup_pins: int = 10

    def __post_init__(self) -> None:
        if self.publish_delay_s < 0 or self.prior_strength <= 0 or self.last_saved_pins < 1 or self.last_closeup_pins < 1:
            raise ConfigError("features: publish_delay_s >= 0, prior_strength > 0, last_saved_pins >= 1 and "
                              "last_closeup_pins >= 1 required")


@dataclass(frozen=True)
class TrainingSetConfig:
    """The point-in-time training set (see :mod:`pinrec.jobs.features.training_set`).

    ``maturity_s``: an action counts as a label when it happens within this long after the
    impression; impressions whose window has not closed by the cut-off are left out.
    ``negative_rate``: share of negatives (impressions with neither closeup nor save) kept, drawn
    only from sessions that have a positive; 1.0 keeps every impression.
    ``validation_days`` / ``test_days``: the last days of the range, in time order.
    ``window_days``: a scheduled run for day ``d`` rebuilds the training set of the days
    ``d - window_days + 1 .. d`` (0: every ingested day up to ``d``).
    ``broadcast_max_mb``: a feature table Spark estimates at most this large is looked up in place
    (collected to the driver, a copy in every Python worker) instead of sort-merge joined
    (:mod:`pinrec.jobs.features.pit_join`); 0 always sort-merges.
    """

    maturity_s: int = 6 * 3600
    negative_rate: float = 1.0
    validation_days: int = 1
    test_days: int = 1
    window_days: int = 0
    broadcast_max_mb: int = 128

    def __post_init__(self) -> None:
        if self.maturity_s <= 0:
            raise ConfigError(f"training.maturity_s must be positive, got {self.maturity_s}")
        if not 0.0 < self.negative_rate <= 1.0:
            raise ConfigError(f"training.negative_rate must be in (0, 1], got {self.negative_rate}")
        if self.validation_days < 0 or self.test_days < 0 or self.window_days < 0:
            raise ConfigError("training.validation_days, test_days and window_days must be >= 0")
        if self.broadcast_max_mb < 0:
            raise ConfigError(f"training.broadcast_max_mb must be >= 0, got {self.broadcast_max_mb}")


@dataclass(frozen=True)
class PinrecConfig:
    storage: StorageConfig = field(default_factory=StorageConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    training: TrainingSetConfig = field(default_factory=TrainingSetConfig)
    pinsage: PinSageTrainConfig = field(default_factory=PinSageTrainConfig)
    retrieval_eval: RetrievalEvalConfig = field(default_factory=RetrievalEvalConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    ranker_train: RankerTrainConfig = field(default_factory=RankerTrainConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    ranker_job: RankerJobConfig = field(default_factory=RankerJobConfig)
    index: IndexConfig = field(default_factory=lambda: IndexConfig(shards=2))  # the demo serves 2 shards
    blessing: BlessingConfig = field(default_factory=BlessingConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    seed: int = 7

    @property
    def bundle_store_uri(self) -> str:
        """Where bundles are published: ``publish.store_uri`` when set, else
        ``<storage.artifacts>/serving`` (so a changed or ``s3://`` artifacts location carries the
        bundles with it). Derived on every read, never stored, so ``replace(storage=...)`` follows."""
        return self.publish.store_uri or f"{self.storage.artifacts.rstrip('/')}/serving"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, typing.get_args(tp)[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {str(k): str(v) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f"{where}: expected a YYYY-MM-DD date, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported config type {tp!r}")


def _build(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or 'config'}: {e}") from None


def _as_dict(cfg: Any) -> dict:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_overrides(pairs: list[str]) -> dict:
    """``["spark.master=local[2]", "seed=3"]`` -> nested dict (values parsed as YAML scalars)."""
    import yaml

    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not of the form section.key=value")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw else ""
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None,
                env: Mapping[str, str] | None = None) -> PinrecConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``; validated. ``env``
    (``main()``'s ``os.environ``; None: not read) fills the S3 settings of ``storage`` that the file
    and overrides leave unset from the standard AWS variables (:meth:`S3Options.from_env`), since
    pyarrow ignores the endpoint ones (S3 keys are never read into the config)."""
    data: dict = {}
    if path is not None:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p}: top level must be a mapping")
        data = loaded
    if overrides:
        data = _merge(data, overrides)
    if env is not None:  # the variables S3Options.from_env reads; keys stay with the SDKs
        storage = data.get("storage") if isinstance(data.get("storage"), dict) else {}
        found = {"s3_endpoint_url": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
                 "s3_region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")}
        data = _merge(data, {"storage": {k: v for k, v in found.items() if v and storage.get(k) is None}})
    return _build(PinrecConfig, data, "")


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that also accepts nested dicts for sub-configs."""
    merged = _merge({k: _as_dict(v) if dataclasses.is_dataclass(v) else v for k, v in _as_dict(cfg).items()}, changes)
    return _build(type(cfg), merged, "")
