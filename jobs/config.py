"""One typed, frozen configuration for every pinrec job.

Defaults live in code; a YAML file (``--config``) and ``--set section.key=value`` overrides only
change what they name. Every section is a frozen pydantic v2 dataclass (:mod:`pinrec.schemas.config_base`:
``extra="forbid"``, ``Field`` bounds, ``Literal`` choices): an unknown key, a wrong type or a value
out of bounds raises :class:`ConfigError` naming the dotted key, what was given and what is allowed,
and an unknown key names the nearest valid one, so a typo never silently falls back to a default
(Feast's ``extra="forbid"``). :mod:`pinrec.jobs.config_schema` exports the JSON Schema and the
reference page ``docs/config-reference.md``.

Every job receives the narrowest sub-config it needs (``cfg.spark``, ``cfg.ingest``, ...).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import types
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BeforeValidator, Field, model_validator

from pinrec.export.build.blessing import BlessingConfig
from pinrec.export.build.publish import PublishConfig
from pinrec.export.index_choice import IndexConfig
from pinrec.export.serving.recommend import RecommendConfig
from pinrec.export.serving.redis_format import RedisConfig
from pinrec.export.serving.store import S3Options, endpoint_problem, shown_url
from pinrec.jobs.cf.config import CfConfig
from pinrec.jobs.funnel.config import FunnelConfig
from pinrec.jobs.io.lake import Location, check_storage_uri
from pinrec.jobs.monitoring.config import MonitoringConfig
from pinrec.jobs.ranking.config import RankerJobConfig
from pinrec.jobs.retrieval.config import RetrievalEvalConfig
from pinrec.models.config import (
    CalibrationConfig,
    PinSageTrainConfig,
    RankerConfig,
    RankerTrainConfig,
    TwoTowerConfig,
)
from pinrec.schemas.catalog import MAX_POSITION, RAW_TABLES
from pinrec.schemas.config_base import ConfigError, section, validate

#: the labels the training set holds (``jobs/features/training_set.py``): what ranker and monitoring tasks may name
TRAINING_LABELS = ("closeup", "save")

__all__ = ["LAKE_LOCATIONS", "ConfigError", "DatasetConfig", "FeatureConfig", "IngestConfig", "PinrecConfig",
           "SparkConfig", "StorageConfig", "SyntheticConfig", "TrainingSetConfig", "load_config", "parse_overrides",
           "replace", "s3_options"]

NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(ge=1)]


def _strings(value: Any) -> Any:
    """``spark.extra`` values as Spark takes them: every scalar as its string (YAML's ``2`` -> ``"2"``,
    ``true`` -> ``"true"``); a mapping, list or null is refused (``--set spark.extra.spark.x=1`` splits
    the key at its dots: quote it in a file, or set the whole mapping, ``--set 'spark.extra={spark.x: 1}'``)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None or isinstance(v, dict | list):
                raise ValueError(f"spark.extra[{k!r}] must be a string, number or boolean (a Spark setting's "
                                 f"value), got {v!r:.60}; a key with dots is one key: "
                                 "--set 'spark.extra={spark.a.b: value}'")
            out[str(k)] = v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
        return out
    return value


@section("storage")
class StorageConfig:
    """Where things live. Relative paths are resolved against the working directory.

    ``landing``, ``warehouse`` and ``artifacts`` are each a local path or an ``s3://`` /
    ``s3a://bucket/prefix`` URI (:class:`~pinrec.jobs.io.lake.Location`; Spark always gets
    ``s3a://``); a URI holds no ``?``, ``#`` or ``%``, an S3 one no empty, ``.`` or ``..`` segment
    (:func:`~pinrec.jobs.io.lake.check_storage_uri`). ``s3_endpoint_url`` / ``s3_region``: the one S3 server of all of them, of every
    bundle store a job opens (publish, rollback, prune, recommend, the demo) and of Spark's s3a
    (:func:`pinrec.jobs.io.spark.s3a_conf`); None: the AWS environment's
    (``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``; ``AWS_REGION`` or ``AWS_DEFAULT_REGION``,
    filled in by :func:`load_config` when ``main()`` passes its environment), else AWS itself and
    ``us-east-1``; the endpoint is ``http(s)://host[:port]`` (no path: pyarrow would drop it, s3a and
    boto3 keep it; no ``user:password@``). Keys never live here: the AWS SDKs read them from their own chain.
    ``mlflow_artifacts``: where a new MLflow experiment keeps its run artifacts (``s3://`` / ``s3a://``
    bucket and prefix, a local path or ``file://``), reached with the S3 settings above; None: an
    ``mlartifacts/`` folder beside a SQLite store, a tracking server's own artifact root.
    ``shared_local``: a local ``landing`` or ``warehouse`` is a filesystem every Spark node mounts at the
    same path (NFS, or a cluster on this one machine); false: a Spark master that is not ``local``
    (``spark.master``, or spark-submit's) is refused while either is a local path, since executors
    would write their Parquet files to their own disks and the Delta log to the driver's
    (:meth:`check_master`).
    """

    landing: str = "./var/landing"
    warehouse: str = "./var/warehouse"
    artifacts: str = "./var/artifacts"
    mlflow_tracking_uri: str = "sqlite:///var/mlflow.db"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    mlflow_artifacts: str | None = None
    shared_local: bool = False

    @model_validator(mode="after")
    def _check(self) -> StorageConfig:
        if self.s3_endpoint_url is not None and urlparse(self.s3_endpoint_url).scheme not in ("http", "https"):
            raise ConfigError(f"storage.s3_endpoint_url (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) must start "
                              f"with http:// or https://, got {self.s3_endpoint_url!r}")
        if self.s3_endpoint_url is not None and (problem := endpoint_problem(self.s3_endpoint_url)):
            raise ConfigError(f"storage.s3_endpoint_url (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) must be "
                              f"http(s)://host[:port], got {shown_url(self.s3_endpoint_url)!r}: {problem}")
        for name in (*LAKE_LOCATIONS, "mlflow_tracking_uri"):  # '' would be the working directory, or no tracking
            if not getattr(self, name).strip():
                raise ConfigError(f"storage.{name} is empty: give a path or URI (an unset environment variable?)")
        for name in LAKE_LOCATIONS:
            try:
                Location(getattr(self, name))
                check_storage_uri(getattr(self, name))
            except ValueError as e:
                raise ConfigError(f"storage.{name}: {e}") from None
        if self.mlflow_artifacts is not None:
            parsed = urlparse(self.mlflow_artifacts)
            if parsed.scheme not in ("", "file", "s3", "s3a") or not self.mlflow_artifacts.strip() \
                    or (parsed.scheme in ("s3", "s3a") and not parsed.netloc):
                raise ConfigError(f"storage.mlflow_artifacts must be s3://bucket[/prefix], s3a://bucket[/prefix], "
                                  f"a local path or file://, or null; got {self.mlflow_artifacts!r}")
            try:
                check_storage_uri(self.mlflow_artifacts)
            except ValueError as e:
                raise ConfigError(f"storage.mlflow_artifacts: {e}") from None
        return self

    def check_master(self, master: str, setting: str = "spark.master") -> None:
        """Raises ConfigError when the Spark master ``master`` (named ``setting`` in the message) runs
        executors outside this process (anything but ``local``...) while ``landing`` or ``warehouse``
        is a local path and ``shared_local`` is false."""
        if master.startswith("local") or self.shared_local:
            return
        local = {n: getattr(self, n) for n in SPARK_LOCATIONS if not Location(getattr(self, n)).is_s3}
        if local:
            where = " and ".join(f"storage.{n}={v!r}" for n, v in local.items())
            one = len(local) == 1
            raise ConfigError(f"{setting}={master!r} runs executors on other machines, but {where} "
                              f"{'is' if one else 'are'} on this machine's disk: executors would write Parquet files "
                              f"to their own disks and the Delta log would land on the driver's. Put "
                              f"{'it' if one else 'them'} on S3 (s3://bucket/prefix), or set storage.shared_local=true "
                              f"if every Spark node mounts {'that path' if one else 'those paths'} (NFS, one machine)")

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
#: Those that Spark's executors read and write (artifacts are written by the driver's Python alone).
SPARK_LOCATIONS = ("landing", "warehouse")


def s3_options(storage: StorageConfig) -> S3Options:
    """The connection every bundle store of the jobs is opened with (one place: the CLI, the DAG
    tasks and the demo all call this): ``storage.s3_endpoint_url`` and ``s3_region``; keys from the
    AWS SDK's own chain (``AWS_ACCESS_KEY_ID`` ...), never from the config."""
    return S3Options(endpoint_url=storage.s3_endpoint_url, region=storage.s3_region or "us-east-1")


@section("spark")
class SparkConfig:
    """Spark session settings. ``jars_dir`` holds the Delta jars resolved at setup time.

    ``master``: ``local[*]`` or a cluster URL (``spark://host:7077``...). ``driver_host`` /
    ``driver_bind_address``: the address executors reach the driver at and the one it listens on
    (None: 127.0.0.1 with a ``local`` master, Spark's own choice otherwise, which a cluster needs).
    ``executor_memory`` / ``executor_cores``: per executor on a cluster (None: Spark's default).
    ``shuffle_partitions``: tasks per shuffle (None: the local master's cores, 8 on a cluster).
    ``adaptive``: Spark's adaptive query execution (None: off with a local master, on on a cluster;
    on a single machine's small days its extra stage per shuffle cost more than it saved: a fresh
    demo ran 679 Spark jobs with it, 395 without, same outputs).
    ``quick_jvm``: start the driver JVM tuned for short runs on small data: the C1 JIT compiler only
    (``-XX:TieredStopAtLevel=1``), the serial garbage collector, and a 256 MB code cache (C1-only's
    default of 48 MB is too small for Spark + Delta: a fresh demo flushed and recompiled ~60k methods,
    23 s of sweeping; with 256 MB it ran ~10 % faster). None: off, but ``pinrec demo`` on a
    local master turns it on (a JVM of a few minutes: a fresh demo spent 95 CPU-seconds in JIT compilation
    without it and ran 5-7 % faster with it; a JVM that lives long, as the test suite's, ran a set of
    ingest tests 33 % slower with it with the 48 MB cache, 7 % slower with 256 MB: C2's code pays off
    there; docs/benchmarks.md).
    ``extra["spark.driver.extraJavaOptions"]`` replaces these options and the log4j one.
    ``extra``: any other ``spark.*`` setting, applied last.
    """

    master: str = "local[*]"
    app_name: str = "pinrec"
    shuffle_partitions: PosInt | None = None
    adaptive: bool | None = None
    quick_jvm: bool | None = None
    driver_memory: str = "2g"
    driver_host: str | None = None
    driver_bind_address: str | None = None
    executor_memory: str | None = None
    executor_cores: PosInt | None = None
    jars_dir: str = "./var/jars"
    extra: Annotated[dict[str, str], BeforeValidator(_strings)] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        """Whether the master is Spark's in-process ``local`` one."""
        return self.master.startswith("local")

    @property
    def partitions(self) -> int:
        """``shuffle_partitions`` resolved: the local master's cores (``local`` 1, ``local[N]`` /
        ``local[N,F]`` N, ``local[*]`` this machine's), 8 on a cluster."""
        if self.shuffle_partitions is not None:
            return self.shuffle_partitions
        if not self.local:
            return 8
        match = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\d+)?\])?", self.master)
        cores = match.group(1) if match else None
        if cores == "*":
            return os.cpu_count() or 1
        return int(cores) if cores else 1

    @property
    def adaptive_execution(self) -> bool:
        """``adaptive`` resolved: off with a local master, on on a cluster, unless set."""
        return (not self.local) if self.adaptive is None else self.adaptive

    @property
    def quick_jvm_options(self) -> tuple[str, ...]:
        """The driver JVM's options from ``quick_jvm`` (None: off)."""
        if not self.quick_jvm:
            return ()
        return ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:ReservedCodeCacheSize=256m")


@section("synthetic")
class SyntheticConfig:
    """Size and shape of the synthetic world (see :mod:`pinrec.jobs.ingest.synthetic`). ``feed_order``: how a
    session's pins are placed on positions 1..N: ``"random"`` (in the order drawn, so position is
    independent of every feature) or ``"popularity"`` (most popular first, as a popularity-driven
    feed would: position is then confounded with how popular a pin is)."""

    users: PosInt = 1_000
    pins: PosInt = 4_000
    categories: PosInt = 12
    latent_dim: PosInt = 16
    boards_per_user: PosInt = 3
    days: PosInt = 4
    impressions_per_day: PosInt = 20_000
    session_length: Annotated[int, Field(ge=1, le=MAX_POSITION)] = 20
    fresh_pins_per_day: NonNegInt = 100
    new_users_per_day: NonNegInt = 20
    start_date: dt.date = dt.date(2026, 1, 5)
    fault_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.002
    duplicate_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.002
    feed_order: Literal["random", "popularity"] = "random"


@section("dataset")
class DatasetConfig:
    """Which raw source fills the landing zone.

    ``kind`` is ``"synthetic"`` (the embedded default), ``"movielens-100k"`` (``path``: the GroupLens
    folder) or ``"log"``: any interaction log, ``path`` a CSV / TSV / Parquet file read by
    :mod:`pinrec.jobs.ingest.log_reader` (worked example: ``docs/datasets.md``). For ``log``:
    ``user_column``, ``item_column``, ``timestamp_column`` (none: no time), ``rating_column`` or
    ``weight_column`` (a count: repeated rows are summed); ``timestamps``: ``auto`` (the column when
    given, else ``none``), ``column``, ``row_order`` (rows are in time order) or ``none`` (no time:
    ties); ``timestamp_unit`` of numeric times (``auto``: milliseconds when the largest is at least 1e11, else
    seconds); ``sep`` (none: guessed from the first line: tab, ``::``, comma, ``;`` or ``|``) and ``names``
    (the columns of a header-less file); a ``.json`` / ``.jsonl`` log is read as JSON lines; text that is not
    UTF-8 is read as Latin-1; ``save_threshold`` (none: 4 with ratings, else every
    interaction is a save); ``country`` of every user; ``items``: an item-metadata file keyed by
    ``item_key`` (default: ``item_column``) with ``category_column``, ``labels_column`` (multi-label,
    joined by ``label_sep``: multi-hot content vector) and ``title_column``; ``items_sep`` /
    ``items_names`` as for the log. ``max_partitions`` > 0 bounds the landed partitions per table:
    a dataset with more days than that lands by calendar month, or by year (each event still
    ingested into its own day); 0: one partition per day. ``negative_impressions``: impressions of
    pins the user never interacted with, sampled per interaction (:mod:`pinrec.jobs.ingest.negatives`;
    null: 1 when ``ranker.tasks`` holds ``closeup`` or every interaction is a save, such as an implicit
    log; else 0).
    """

    kind: Literal["synthetic", "movielens-100k", "log"] = "synthetic"
    path: str | None = None
    user_column: str = "user_id"
    item_column: str = "item_id"
    timestamp_column: str | None = None
    rating_column: str | None = None
    weight_column: str | None = None
    timestamps: Literal["auto", "column", "row_order", "none"] = "auto"
    timestamp_unit: Literal["auto", "s", "ms"] = "auto"
    sep: Annotated[str, Field(min_length=1)] | None = None
    names: tuple[str, ...] = ()
    save_threshold: float | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "ZZ"
    items: str | None = None
    item_key: str | None = None
    category_column: str | None = None
    labels_column: str | None = None
    label_sep: Annotated[str, Field(min_length=1)] = "|"
    title_column: str | None = None
    items_sep: Annotated[str, Field(min_length=1)] | None = None
    items_names: tuple[str, ...] = ()
    max_partitions: Annotated[int, Field(ge=0)] = 366
    negative_impressions: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        if self.kind != "synthetic" and not self.path:
            raise ConfigError(f"dataset.path is required for dataset.kind={self.kind!r}")
        return self


@section("ingest")
class IngestConfig:
    """Validation gate of the ingestion job.

    ``max_failing_fraction``: above this share of quarantined rows a batch is rejected and nothing
    is written to the valid table. ``optional_tables``: tables whose landing partition may be
    missing or empty on a day (nothing new arrived); for the others (impressions, actions) a
    missing or empty partition is an error, since it means logging broke. ``max_future_skew_s``:
    how far past the job's clock an event timestamp may be before it counts as "in the future".
    ``reference_lookback_days``: foreign keys into event tables (actions -> impressions) are
    looked up in that many days before the batch. ``parallel_tables``: how many tables of one
    foreign-key level (users and pins; boards and impressions; pin_board_edges and actions) are
    ingested side by side, each in its own thread of the one Spark session (1: one after the other;
    on small days most of a table's time is Spark's per-job latency, which overlaps).
    """

    max_failing_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    optional_tables: tuple[str, ...] = ("users", "pins", "boards", "pin_board_edges")
    max_future_skew_s: Annotated[int, Field(ge=0, le=366 * 86400)] = 300
    reference_lookback_days: NonNegInt = 7
    report_sample_rows: NonNegInt = 5
    parallel_tables: PosInt = 2

    @model_validator(mode="after")
    def _known_tables(self):
        names = [t.name for t in RAW_TABLES]
        unknown = [t for t in self.optional_tables if t not in names]
        if unknown:
            raise ConfigError(f"ingest.optional_tables names unknown table(s) {unknown}; the landed tables are "
                              f"{names}")
        return self


#: the pipeline's steps, in the order they run: what ``cache.force`` may name (pinrec.jobs.orchestration.step_cache)
PIPELINE_STEPS = ("landing", "ingest", "features", "training_set", "graph", "retrieval_settings",
                  "pinsage", "two_tower", "cf", "ranker", "index", "publish", "funnel")


@section("cache")
class StepCacheConfig:
    """The step cache (:mod:`pinrec.jobs.orchestration.step_cache`): a step whose fingerprint (its code,
    config sections and inputs) equals the one recorded beside its last output is skipped and that
    output reused. ``enabled``: false recomputes every step (``--no-cache``). ``force``: steps
    recomputed even when cached (``--force STEP``), from ``landing``, ``ingest``, ``features``,
    ``training_set``, ``graph``, ``retrieval_settings`` (the training DAG's), ``pinsage``, ``two_tower``, ``cf``,
    ``ranker``, ``index``, ``publish``, ``funnel`` (the replays of a bundle: the champion's that publish's
    gate compares with, the training DAG's funnel task).
    """

    enabled: bool = True
    force: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _known_steps(self):
        unknown = sorted(set(self.force) - set(PIPELINE_STEPS))
        if unknown:
            raise ConfigError(f"cache.force names unknown step(s) {unknown}; the steps are {list(PIPELINE_STEPS)}")
        return self


@section("features")
class FeatureConfig:
    """Daily feature tables (see :mod:`pinrec.jobs.features.features`).

    ``publish_delay_s``: a day's feature row gets ``feature_ts`` = the end of that day and
    ``created_ts`` = ``feature_ts`` + this delay, the time the daily job would have made it
    servable; the point-in-time join never uses a row before its ``created_ts``.
    ``prior_strength``: pseudo-impressions of the Bayesian smoothing of rates.
    ``last_saved_pins`` / ``last_closeup_pins``: length of the user's lists of recent saves and
    closeups (newest first, 30 days), which the PinSage user embeddings average.
    """

    publish_delay_s: NonNegInt = 3600
    prior_strength: Annotated[float, Field(gt=0)] = 20.0
    last_saved_pins: PosInt = 10
    last_closeup_pins: PosInt = 10


@section("training")
class TrainingSetConfig:
    """The point-in-time training set (see :mod:`pinrec.jobs.features.training_set`).

    ``maturity_s``: an action counts as a label when it happens within this long after the
    impression; impressions whose window has not closed by the cut-off are left out.
    ``negative_rate``: share of negatives (impressions with neither closeup nor save) kept, drawn
    only from sessions that have a positive; 1.0 keeps every impression.
    ``validation_days`` / ``test_days``: the last days of the range, in time order; null (the default):
    chosen from the data, the fewest last days holding ``holdout_fraction`` of the range's impressions
    each, leaving a day to train on (:mod:`pinrec.jobs.features.holdout`).
    ``holdout_fraction``: the share of the range's impressions each null number of held-out days holds.
    ``window_days``: a scheduled run for day ``d`` rebuilds the training set of the days
    ``d - window_days + 1 .. d`` (0: every ingested day up to ``d``).
    ``broadcast_max_mb``: a feature table Spark estimates at most this large is looked up in place
    (collected to the driver, a copy in every Python worker) instead of joined after a shuffle of
    the spine (validity intervals and a hash join; :mod:`pinrec.jobs.features.pit_join`); 0 always
    shuffles.
    """

    maturity_s: PosInt = 6 * 3600
    negative_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    validation_days: NonNegInt | None = None
    test_days: NonNegInt | None = None
    holdout_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    window_days: NonNegInt = 0
    broadcast_max_mb: NonNegInt = 128

    @model_validator(mode="after")
    def _window_holds_the_split(self):
        held = sum(n if n is not None else 1 for n in (self.validation_days, self.test_days))  # null: at least one
        if 0 < self.window_days <= held:  # every scheduled run would skip: no day left to train on
            raise ConfigError(f"training.window_days={self.window_days} cannot hold a day to train on besides "
                              f"{held} held-out day(s) (validation_days={self.validation_days}, test_days="
                              f"{self.test_days}; null: at least 1): set it to >= {held + 1}, or 0 for every day")
        return self


@section("")
class PinrecConfig:
    """The whole configuration: one field per section (see ``docs/config-reference.md``) and
    ``seed``: the seed of the synthetic world's generator, the training set's negative sampling and the drift
    monitor's row sample (the models and the index have their own)."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    training: TrainingSetConfig = field(default_factory=TrainingSetConfig)
    pinsage: PinSageTrainConfig = field(default_factory=PinSageTrainConfig)
    two_tower: TwoTowerConfig = field(default_factory=TwoTowerConfig)
    cf: CfConfig = field(default_factory=CfConfig)
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
    funnel: FunnelConfig = field(default_factory=FunnelConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    cache: StepCacheConfig = field(default_factory=StepCacheConfig)
    seed: int = 7

    @model_validator(mode="after")
    def _storage_reaches_the_executors(self):
        """A cluster master with the lake on the driver's disk (:meth:`StorageConfig.check_master`)."""
        self.storage.check_master(self.spark.master)
        return self

    @model_validator(mode="after")
    def _tasks_agree(self):
        """Settings of the ranker's tasks that must agree, checked before a run trains for an hour."""
        for where, tasks in (("ranker.tasks", self.ranker.tasks), ("monitoring.tasks", self.monitoring.tasks)):
            if bad := [t for t in tasks if t not in TRAINING_LABELS]:
                raise ConfigError(f"{where} names {bad}: the training set's labels are {list(TRAINING_LABELS)}")
        n = len(self.ranker.tasks)
        for where, weights in (("calibration.score_weights", self.calibration.score_weights),
                               ("ranker_train.task_weights", self.ranker_train.task_weights or None)):
            if weights is not None and len(weights) != n:
                raise ConfigError(f"{where} {list(weights)} needs one weight per ranker task {list(self.ranker.tasks)}"
                                  f"{' (or null: the defaults per task)' if where.startswith('calibration') else ''}")
        return self

    def index_for(self, channel: str) -> IndexConfig:
        """``index`` with ``k`` raised to as many neighbours as ``recommend`` asks of that index per query
        (``channel``: ``"ann"``, the PinSage index, ``recommend.ann_candidates``; ``"two_tower"``,
        ``two_tower_candidates``): an IVF index tuned and measured at k = 10 finds far fewer of the true
        top 500 at k = 500 (and pads with -1), so the build tunes recall and latency at the serving k."""
        wanted = {"ann": self.recommend.ann_candidates, "two_tower": self.recommend.two_tower_candidates}
        if channel not in wanted:
            raise ValueError(f"index_for: channel must be one of {sorted(wanted)}, got {channel!r}")
        return dataclasses.replace(self.index, k=max(self.index.k, wanted[channel]))

    @property
    def bundle_store_uri(self) -> str:
        """Where bundles are published: ``publish.store_uri`` when set, else
        ``<storage.artifacts>/serving`` (so a changed or ``s3://`` artifacts location carries the
        bundles with it). Derived on every read, never stored, so ``replace(storage=...)`` follows."""
        return self.publish.store_uri or f"{self.storage.artifacts.rstrip('/')}/serving"


def _as_dict(cfg: Any) -> dict:
    """One level: a config's fields by name, its sections still as dataclasses."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def _merge(base: dict, override: dict, where: str = "") -> dict:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, f"{where}{k}.")
        elif isinstance(v, dict) and out.get(k) is not None:  # keys into a value: what was meant is unknown
            raise ConfigError(f"{where}{k} must be a mapping of keys, got {out[k]!r:.80}")
        else:
            out[k] = v
    return out


def parse_overrides(pairs: list[str]) -> dict:
    """``["spark.master=local[2]", "seed=3"]`` -> nested dict (values parsed as YAML,
    :func:`pinrec.jobs.config_yaml.override_value`)."""
    from .config_yaml import override_value

    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not of the form section.key=value")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        if not all(part.strip() for part in parts):
            raise ConfigError(f"override {pair!r}: the key {key.strip()!r} has an empty part; write section.key=value")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {pair!r}: {'.'.join(parts[:i + 1])} was given a value by an earlier "
                                  "override, so it has no keys to set")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"override {pair!r}: an earlier override set keys inside {key.strip()}")
        where = f"override {pair!r}"
        if _text_field(parts):  # a text setting takes the text typed (sep=, or sep=:: is not YAML for text)
            try:
                value = override_value(raw, where)
            except ConfigError:
                value = raw.strip()
            node[parts[-1]] = value if value is None or isinstance(value, str) else raw.strip()
        else:
            node[parts[-1]] = override_value(raw, where)
    return out


def _text_field(parts: list[str]) -> bool:
    """Whether the config key ``parts`` (``["dataset", "sep"]``) is a text setting (``str``, or ``str | None``)."""
    owner: Any = PinrecConfig
    for i, name in enumerate(parts):
        info = getattr(owner, "__pydantic_fields__", {}).get(name)
        if info is None:
            return False
        if i == len(parts) - 1:
            return _is_text(info.annotation)
        owner = info.annotation
    return False


def _is_text(annotation: Any) -> bool:
    import typing

    if annotation is str:
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Annotated:
        return _is_text(args[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return len(kinds) == 1 and _is_text(kinds[0])
    return False


def load_config(path: str | Path | None = None, overrides: dict | None = None,
                env: Mapping[str, str] | None = None) -> PinrecConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``; validated. ``env``
    (``main()``'s ``os.environ``; None: not read) fills the S3 settings of ``storage`` that the file
    and overrides leave unset from the standard AWS variables (:meth:`S3Options.from_env`), since
    pyarrow ignores the endpoint ones (S3 keys are never read into the config)."""
    data: dict = {}
    if path is not None:
        from .config_yaml import load_yaml

        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"config file {p} is a folder; give the YAML file in it")
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {p} is not UTF-8 text ({e.reason} at byte {e.start})") from None
        loaded = load_yaml(text, f"config file {p}") or {}
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
    return validate(PinrecConfig, data)


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that also accepts nested dicts for sub-configs: ``replace(cfg,
    synthetic={"days": 1})`` changes that one key and keeps the section's others; re-validated."""
    merged = _merge({k: _as_dict(v) if dataclasses.is_dataclass(v) else v for k, v in _as_dict(cfg).items()}, changes)
    return validate(type(cfg), merged, getattr(type(cfg), "__config_section__", ""))
